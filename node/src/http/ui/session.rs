//! Browser sessions: one-time login links that become an HttpOnly, SameSite=Strict cookie, and
//! the CSRF token of each session.
//!
//! The node's owner gets a login link from `agora up` or `agora open` (both make it through the
//! token-protected API, [`crate::http::ops::UiLogin`]). Opening it once turns it into a session
//! cookie; the link is then spent. A session carries a CSRF token, which every form of the UI
//! sends back in a hidden field and every POST checks. Sessions live in memory: a restarted node
//! asks for a new link.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a login link can be used.
pub const LINK_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Login links not yet used, at most; the oldest is dropped past that.
const MAX_LINKS: usize = 16;
/// Sessions at once, at most; the oldest is dropped past that.
const MAX_SESSIONS: usize = 64;
/// The session cookie's name.
pub const COOKIE: &str = "agora_session";

/// The node's browser sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Login secrets, with when they were made.
    links: HashMap<String, Instant>,
    /// Session secrets, with their CSRF token and when they began.
    sessions: HashMap<String, (String, Instant)>,
}

/// 32 random bytes as hex.
fn secret() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares two secrets in time independent of where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new one-time login secret, valid for [`LINK_LIFETIME`].
    pub fn new_link(&self) -> Option<String> {
        let token = secret()?;
        let mut inner = self.lock();
        inner.links.retain(|_, made| made.elapsed() < LINK_LIFETIME);
        if inner.links.len() >= MAX_LINKS
            && let Some(oldest) = inner
                .links
                .iter()
                .min_by_key(|(_, made)| **made)
                .map(|(k, _)| k.clone())
        {
            inner.links.remove(&oldest);
        }
        inner.links.insert(token.clone(), Instant::now());
        Some(token)
    }

    /// Spends a login secret: a new session's secret if it was valid, never twice.
    pub fn log_in(&self, link: &str) -> Option<String> {
        let mut inner = self.lock();
        let key = inner.links.keys().find(|k| same_secret(k, link)).cloned()?;
        let made = inner.links.remove(&key)?;
        if made.elapsed() >= LINK_LIFETIME {
            return None;
        }
        let session = secret()?;
        let csrf = secret()?;
        if inner.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = inner
                .sessions
                .iter()
                .min_by_key(|(_, (_, began))| *began)
                .map(|(k, _)| k.clone())
        {
            inner.sessions.remove(&oldest);
        }
        inner
            .sessions
            .insert(session.clone(), (csrf, Instant::now()));
        Some(session)
    }

    /// The CSRF token of a session, if the secret names one.
    pub fn csrf(&self, session: &str) -> Option<String> {
        let inner = self.lock();
        inner
            .sessions
            .iter()
            .find(|(k, _)| same_secret(k, session))
            .map(|(_, (csrf, _))| csrf.clone())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_login_link_works_once_and_gives_a_session_with_its_own_csrf_token() {
        let sessions = Sessions::default();
        let link = sessions.new_link().unwrap();
        assert_eq!(sessions.log_in("not a link"), None);
        let session = sessions.log_in(&link).unwrap();
        assert_eq!(sessions.log_in(&link), None, "spent");
        let csrf = sessions.csrf(&session).unwrap();
        assert_ne!(csrf, session);
        assert_eq!(sessions.csrf(&link), None);
        assert_eq!(sessions.csrf(""), None);
    }
}
