//! The Agora node: store, replication protocol, network. Not built yet: see issue "The node".
