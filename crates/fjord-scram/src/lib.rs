//! SCRAM (RFC 5802, with the SHA-256 of RFC 7677 and the SHA-512 Kafka adds):
//! the credential a server stores and the arithmetic both ends of an
//! exchange do.
//!
//! Kafka never stores a password: `AlterUserScramCredentials` carries a salt
//! and the *salted* password (the client ran PBKDF2), and the metadata log
//! keeps only what a server needs to check a proof — the stored key and the
//! server key (Kafka's `UserScramCredentialRecord`). This crate is that
//! credential and the few functions around it, shared by the controller
//! (derives a credential when it applies an alteration), the gateway (checks
//! a client's proof during SaslAuthenticate) and `fjord user` (salts a
//! password). It is a leaf: nothing of Fjord's, no I/O.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Kafka's `ScramMechanism`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name (`sasl.enabled.mechanisms`, SaslHandshake).
    pub fn mechanism_name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism of a SASL mechanism name (exact, as Kafka's `forMechanismName`).
    pub fn from_mechanism_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL
            .into_iter()
            .find(|m| m.mechanism_name() == name)
    }

    /// The byte DescribeUserScramCredentials / AlterUserScramCredentials
    /// carry (Kafka's `ScramMechanism.type()`; 0 is UNKNOWN).
    pub fn wire_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_wire_type(wire: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL
            .into_iter()
            .find(|m| m.wire_type() == wire)
    }

    /// Fewest PBKDF2 iterations Kafka accepts (`ScramMechanism.minIterations`).
    pub fn min_iterations(self) -> u32 {
        4096
    }

    /// Most iterations Kafka accepts (`ScramFormatter`'s 16384 bound, which
    /// keeps one AlterUserScramCredentials from costing the controller seconds).
    pub fn max_iterations(self) -> u32 {
        16384
    }

    /// Bytes of the hash: the length of every key and proof.
    pub fn output_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    /// RFC 5802's `H(data)`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// RFC 5802's `HMAC(key, data)`.
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // new_from_slice fails only for fixed-size keys; HMAC takes any length.
        match self {
            ScramMechanism::Sha256 => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut mac =
                    Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    /// RFC 5802's `Hi(password, salt, i)`: PBKDF2 with this HMAC. The
    /// password is the SASLprep'd UTF-8 (Kafka applies no SASLprep either:
    /// its `ScramFormatter.normalize` is plain UTF-8).
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.output_len()];
        match self {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out)
            }
        }
        out
    }

    /// `ClientKey = HMAC(SaltedPassword, "Client Key")`.
    pub fn client_key(self, salted_password: &[u8]) -> Vec<u8> {
        self.hmac(salted_password, b"Client Key")
    }

    /// `ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage)`: what a
    /// client sends; the server never computes it (tests and clients do).
    pub fn client_proof(self, salted_password: &[u8], auth_message: &[u8]) -> Vec<u8> {
        let client_key = self.client_key(salted_password);
        let stored_key = self.hash(&client_key);
        let signature = self.hmac(&stored_key, auth_message);
        xor(&client_key, &signature)
    }

    /// `ServerSignature = HMAC(ServerKey, AuthMessage)`, for a client to check the server.
    pub fn server_signature(self, server_key: &[u8], auth_message: &[u8]) -> Vec<u8> {
        self.hmac(server_key, auth_message)
    }
}

impl std::fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.mechanism_name())
    }
}

/// What a server keeps of one user's password for one mechanism (Kafka's
/// `ScramCredential`): enough to check a proof, not enough to forge one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

// Keys stay out of logs.
impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Why a proof was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofError {
    /// The proof is not as long as the mechanism's hash.
    WrongLength,
    /// The proof does not match the stored key: a wrong password.
    Mismatch,
}

impl ScramCredential {
    /// The credential of a salted password (what AlterUserScramCredentials carries).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        salted_password: &[u8],
        iterations: u32,
    ) -> ScramCredential {
        let client_key = mechanism.client_key(salted_password);
        ScramCredential {
            salt,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// The credential of a password with the given salt.
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramCredential {
        let salted = mechanism.salted_password(password, &salt, iterations);
        ScramCredential::from_salted_password(mechanism, salt, &salted, iterations)
    }

    /// Check a client's proof against this credential (RFC 5802 §3: recover
    /// ClientKey = proof XOR HMAC(StoredKey, AuthMessage) and compare its
    /// hash with StoredKey, in constant time). On success, the server
    /// signature to send in the server-final message.
    pub fn verify_client_proof(
        &self,
        mechanism: ScramMechanism,
        auth_message: &[u8],
        client_proof: &[u8],
    ) -> Result<Vec<u8>, ProofError> {
        if client_proof.len() != mechanism.output_len()
            || self.stored_key.len() != mechanism.output_len()
        {
            return Err(ProofError::WrongLength);
        }
        let signature = mechanism.hmac(&self.stored_key, auth_message);
        let client_key = xor(client_proof, &signature);
        let computed = mechanism.hash(&client_key);
        if bool::from(computed.ct_eq(&self.stored_key)) {
            Ok(mechanism.server_signature(&self.server_key, auth_message))
        } else {
            Err(ProofError::Mismatch)
        }
    }
}

/// Random bytes from the operating system's CSPRNG (salts, nonces).
pub fn random_bytes(len: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut out = vec![0u8; len];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        // A small decoder keeps the crate free of a base64 dependency only tests need.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = Vec::new();
        for c in s.bytes().filter(|&c| c != b'=') {
            let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
            bits = (bits << 6) | v;
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
            }
        }
        out
    }

    // RFC 7677 §3's example exchange: user "user", password "pencil".
    const RFC7677_AUTH_MESSAGE: &str = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";

    #[test]
    fn rfc7677_sha256_exchange() {
        let m = ScramMechanism::Sha256;
        let salt = b64("W22ZaJ0SNY7soEsUEjb6gQ==");
        let cred = ScramCredential::from_password(m, b"pencil", salt.clone(), 4096);
        let salted = m.salted_password(b"pencil", &salt, 4096);
        let proof = m.client_proof(&salted, RFC7677_AUTH_MESSAGE.as_bytes());
        assert_eq!(proof, b64("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="));
        let server_signature = cred
            .verify_client_proof(m, RFC7677_AUTH_MESSAGE.as_bytes(), &proof)
            .expect("the RFC's proof is valid");
        assert_eq!(
            server_signature,
            b64("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        );
    }

    #[test]
    fn a_wrong_password_or_a_short_proof_is_refused() {
        for m in ScramMechanism::ALL {
            let cred = ScramCredential::from_password(m, b"right", b"salt".to_vec(), 4096);
            let wrong = m.salted_password(b"wrong", b"salt", 4096);
            let auth = b"n=u,r=a,r=ab,s=c2FsdA==,i=4096,c=biws,r=ab";
            let proof = m.client_proof(&wrong, auth);
            assert_eq!(
                cred.verify_client_proof(m, auth, &proof),
                Err(ProofError::Mismatch)
            );
            assert_eq!(
                cred.verify_client_proof(m, auth, &proof[..5]),
                Err(ProofError::WrongLength)
            );
            let right = m.salted_password(b"right", b"salt", 4096);
            let ok = m.client_proof(&right, auth);
            assert!(cred.verify_client_proof(m, auth, &ok).is_ok());
        }
    }

    #[test]
    fn mechanism_names_and_wire_types_round_trip() {
        for m in ScramMechanism::ALL {
            assert_eq!(
                ScramMechanism::from_mechanism_name(m.mechanism_name()),
                Some(m)
            );
            assert_eq!(ScramMechanism::from_wire_type(m.wire_type()), Some(m));
        }
        assert_eq!(ScramMechanism::from_wire_type(0), None);
        assert_eq!(ScramMechanism::from_mechanism_name("scram-sha-256"), None);
    }

    #[test]
    fn debug_does_not_print_keys() {
        let cred = ScramCredential::from_password(ScramMechanism::Sha512, b"p", vec![1; 16], 4096);
        let shown = format!("{cred:?}");
        assert!(
            !shown.contains("stored_key") && shown.contains("4096"),
            "{shown}"
        );
    }
}
