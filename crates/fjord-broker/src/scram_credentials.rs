//! The SCRAM credentials SaslAuthenticate checks proofs against: an
//! immutable index of the applied metadata image's credentials, swapped in
//! whole by the metadata follower (as the authorizer's ACL index), so a
//! lookup takes no lock.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use fjord_controller::ScramImage;
use fjord_scram::{ScramCredential, ScramMechanism};

/// Every (user, mechanism) credential of one image.
pub type ScramIndex = HashMap<(String, ScramMechanism), ScramCredential>;

/// The index of an image's credentials.
pub fn scram_index(image: &ScramImage) -> ScramIndex {
    image
        .users
        .iter()
        .flat_map(|(user, creds)| {
            creds
                .iter()
                .map(move |(m, c)| ((user.clone(), *m), c.clone()))
        })
        .collect()
}

#[derive(Default)]
pub struct ScramCredentialStore {
    index: ArcSwap<ScramIndex>,
}

impl ScramCredentialStore {
    /// The credential `user` has for `mechanism`, if any.
    pub fn lookup(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        // A (String, _) key cannot be borrowed as (&str, _): one small
        // allocation per authentication, never per request.
        self.index
            .load()
            .get(&(user.to_owned(), mechanism))
            .cloned()
    }

    /// Replace the whole index (the metadata follower, when the image's
    /// credentials changed).
    pub fn publish(&self, index: ScramIndex) {
        self.index.store(Arc::new(index));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_credential_is_found_by_user_and_mechanism_only() {
        let store = ScramCredentialStore::default();
        assert!(store.lookup("alice", ScramMechanism::Sha256).is_none());
        let cred =
            ScramCredential::from_password(ScramMechanism::Sha256, b"pw", b"salt".to_vec(), 4096);
        store.publish(HashMap::from([(
            ("alice".to_owned(), ScramMechanism::Sha256),
            cred.clone(),
        )]));
        assert_eq!(store.lookup("alice", ScramMechanism::Sha256), Some(cred));
        assert!(store.lookup("alice", ScramMechanism::Sha512).is_none());
        assert!(store.lookup("bob", ScramMechanism::Sha256).is_none());
    }
}
