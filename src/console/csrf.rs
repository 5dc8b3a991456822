//! CSRF protection for every form of the console: a random per-browser cookie (SameSite=Strict,
//! HttpOnly) and, in each form, an HMAC-SHA256 (ring) of that cookie, the person and the form's
//! action under a key that lives only in this process. A POST is accepted only with a cookie and
//! a token that verifies; nothing else is kept on the server.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};

/// The form field that carries the token.
pub const FIELD: &str = "csrf";

/// The key tokens are made with; a new one each time the console starts.
pub struct Csrf {
    key: hmac::Key,
    rng: SystemRandom,
    cookie: &'static str,
}

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Csrf { .. }")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CsrfError {
    #[error("the browser sent no console cookie")]
    NoCookie,
    #[error("the form carries no token")]
    NoToken,
    #[error("the form's token is not this console's for this browser, person and form")]
    Invalid,
    #[error("no random bytes for a key or cookie")]
    Random,
}

impl Csrf {
    /// A new random key. `secure` names the cookie `__Host-…` (TLS only, this host only).
    pub fn new(secure: bool) -> Result<Self, CsrfError> {
        let rng = SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).map_err(|_| CsrfError::Random)?;
        let cookie = if secure {
            "__Host-pactgate-csrf"
        } else {
            "pactgate-csrf"
        };
        Ok(Self { key, rng, cookie })
    }

    /// The cookie's name.
    pub fn cookie_name(&self) -> &'static str {
        self.cookie
    }

    /// A new random cookie value.
    pub fn new_cookie(&self) -> Result<String, CsrfError> {
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes).map_err(|_| CsrfError::Random)?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The `Set-Cookie` value for `value`.
    pub fn set_cookie(&self, value: &str, secure: bool) -> String {
        let secure = if secure { "; Secure" } else { "" };
        format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Strict{secure}",
            self.cookie
        )
    }

    /// The cookie's value in a `Cookie` header, if sent.
    pub fn cookie_of(&self, header: Option<&str>) -> Option<String> {
        header?
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.cookie)
            .map(|(_, value)| value.to_owned())
            .filter(|v| !v.is_empty())
    }

    fn message(cookie: &str, person: &str, action: &str) -> Vec<u8> {
        [cookie, person, action].join("\0").into_bytes()
    }

    /// The token for the form posting to `action`, for this browser's `cookie` and `person`.
    pub fn token(&self, cookie: &str, person: &str, action: &str) -> String {
        let tag = hmac::sign(&self.key, &Self::message(cookie, person, action));
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Checks a posted token (in constant time, by ring).
    pub fn verify(
        &self,
        cookie: Option<&str>,
        person: &str,
        action: &str,
        token: Option<&str>,
    ) -> Result<(), CsrfError> {
        let cookie = cookie.ok_or(CsrfError::NoCookie)?;
        let token = token.filter(|t| !t.is_empty()).ok_or(CsrfError::NoToken)?;
        let tag = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| CsrfError::Invalid)?;
        hmac::verify(&self.key, &Self::message(cookie, person, action), &tag)
            .map_err(|_| CsrfError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_holds_for_its_cookie_person_and_form_only() {
        let csrf = Csrf::new(false).unwrap();
        let cookie = csrf.new_cookie().unwrap();
        let token = csrf.token(&cookie, "A. Bakker", "/kind");
        assert_eq!(
            csrf.verify(Some(&cookie), "A. Bakker", "/kind", Some(&token)),
            Ok(())
        );
        let other = csrf.new_cookie().unwrap();
        assert_eq!(
            csrf.verify(Some(&other), "A. Bakker", "/kind", Some(&token)),
            Err(CsrfError::Invalid)
        );
        assert_eq!(
            csrf.verify(Some(&cookie), "J. de Vries", "/kind", Some(&token)),
            Err(CsrfError::Invalid)
        );
        assert_eq!(
            csrf.verify(Some(&cookie), "A. Bakker", "/casussen", Some(&token)),
            Err(CsrfError::Invalid)
        );
        assert_eq!(
            csrf.verify(None, "A. Bakker", "/kind", Some(&token)),
            Err(CsrfError::NoCookie)
        );
        assert_eq!(
            csrf.verify(Some(&cookie), "A. Bakker", "/kind", None),
            Err(CsrfError::NoToken)
        );
        let restarted = Csrf::new(false).unwrap();
        assert_eq!(
            restarted.verify(Some(&cookie), "A. Bakker", "/kind", Some(&token)),
            Err(CsrfError::Invalid)
        );
    }

    #[test]
    fn the_cookie_is_read_among_others() {
        let csrf = Csrf::new(true).unwrap();
        assert_eq!(
            csrf.cookie_of(Some("a=1; __Host-pactgate-csrf=xyz; b=2")),
            Some("xyz".to_owned())
        );
        assert_eq!(csrf.cookie_of(Some("pactgate-csrf=xyz")), None);
        assert!(csrf
            .set_cookie("v", true)
            .contains("SameSite=Strict; Secure"));
    }
}
