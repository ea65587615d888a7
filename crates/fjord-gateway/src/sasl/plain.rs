//! SASL/PLAIN (RFC 4616) against the users file: one message,
//! `authzid NUL authcid NUL passwd`, checked in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{PlainUsers, SaslError, Step};

/// PLAIN's server: a single step, then over.
#[derive(Debug, Default)]
pub(crate) struct PlainServer {
    done: bool,
}

impl PlainServer {
    pub(crate) fn evaluate(&mut self, users: &PlainUsers, token: &[u8]) -> Result<Step, SaslError> {
        if std::mem::replace(&mut self.done, true) {
            return Err(SaslError::ExchangeOver);
        }
        // Kafka splits on NUL and wants exactly three parts (an empty
        // authzid is the first, empty, part).
        let parts: Vec<&[u8]> = token.split(|&b| b == 0).collect();
        let [authzid, username, password] = parts[..] else {
            return Err(SaslError::PlainTokens { got: parts.len() });
        };
        if username.is_empty() {
            return Err(SaslError::PlainNoUsername);
        }
        if password.is_empty() {
            return Err(SaslError::PlainNoPassword);
        }
        // Names that are not UTF-8 cannot be in the users file.
        let username =
            std::str::from_utf8(username).map_err(|_| SaslError::PlainInvalidCredentials)?;
        let stored = users.password(username);
        // Compare digests, so neither the password's length nor the place
        // of the first difference shows in the time taken; an unknown user
        // costs the same hashing as a known one.
        let expected = Sha256::digest(stored.unwrap_or(b"\0unknown user\0"));
        let given = Sha256::digest(password);
        let matches = bool::from(expected.ct_eq(&given)) && stored.is_some();
        if !matches {
            return Err(SaslError::PlainInvalidCredentials);
        }
        if !authzid.is_empty() && authzid != username.as_bytes() {
            return Err(SaslError::AuthorizationIdMismatch);
        }
        Ok(Step::Complete {
            user: username.to_owned(),
            final_token: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> PlainUsers {
        PlainUsers::new([("alice".to_owned(), "alice-secret".to_owned())])
    }

    fn run(token: &[u8]) -> Result<Step, SaslError> {
        PlainServer::default().evaluate(&users(), token)
    }

    #[test]
    fn the_right_password_authenticates_with_or_without_an_equal_authzid() {
        for token in [&b"\0alice\0alice-secret"[..], b"alice\0alice\0alice-secret"] {
            assert_eq!(
                run(token),
                Ok(Step::Complete {
                    user: "alice".into(),
                    final_token: vec![]
                })
            );
        }
    }

    #[test]
    fn wrong_passwords_unknown_users_and_malformed_tokens_fail() {
        let cases: &[(&[u8], SaslError)] = &[
            (b"\0alice\0wrong", SaslError::PlainInvalidCredentials),
            (b"\0alice\0alice-secre", SaslError::PlainInvalidCredentials),
            (b"\0bob\0alice-secret", SaslError::PlainInvalidCredentials),
            (
                b"\0\xff\xfe\0alice-secret",
                SaslError::PlainInvalidCredentials,
            ),
            (
                b"bob\0alice\0alice-secret",
                SaslError::AuthorizationIdMismatch,
            ),
            (b"", SaslError::PlainTokens { got: 1 }),
            (b"alice", SaslError::PlainTokens { got: 1 }),
            (b"\0alice", SaslError::PlainTokens { got: 2 }),
            (b"\0alice\0pw\0", SaslError::PlainTokens { got: 4 }),
            (b"\0\0alice-secret", SaslError::PlainNoUsername),
            (b"\0alice\0", SaslError::PlainNoPassword),
        ];
        for (token, expected) in cases {
            assert_eq!(run(token).as_ref(), Err(expected), "{token:?}");
        }
    }

    #[test]
    fn a_second_token_is_refused() {
        let mut server = PlainServer::default();
        assert!(server.evaluate(&users(), b"\0alice\0alice-secret").is_ok());
        assert_eq!(
            server.evaluate(&users(), b"\0alice\0alice-secret"),
            Err(SaslError::ExchangeOver)
        );
    }
}
