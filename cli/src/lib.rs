//! The `agora` command line front end. Not built yet: see issue "The `agora` command".
