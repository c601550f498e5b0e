//! The `agora-bootstrap` volunteer peer. Not built yet: see issue "Volunteer bootstrap peers".
