//! The Agora scenario runner. Not built yet: see issue "Simulations".
