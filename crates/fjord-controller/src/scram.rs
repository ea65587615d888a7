//! SCRAM credentials as the metadata log stores them (Kafka's
//! `UserScramCredentialRecord` / `RemoveUserScramCredentialRecord`), the
//! rules of AlterUserScramCredentials (Kafka's `ScramControlManager`) and
//! DescribeUserScramCredentials (Kafka's `ScramImage.describe`).
//!
//! The log never holds a password nor a salted password: the broker that
//! takes an AlterUserScramCredentials derives the credential (salt, stored
//! key, server key, iterations) before it proposes the command
//! ([`ScramAlteration::plan`]), so what Raft replicates and snapshots is
//! only what a server needs to check a proof. The salted password is a
//! password equivalent (it yields the client key), so keeping it out of the
//! log matters as much as keeping the password out.
//!
//! Validation is in two steps, both pure: `plan` refuses what the request
//! alone shows to be wrong (empty user, unknown mechanism, iterations out of
//! range, a user altered twice); applying the command refuses what depends
//! on the image (deleting a credential that does not exist) and checks the
//! request-only rules again, since apply is the only place that decides.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use fjord_scram::ScramCredential;
use fjord_scram::ScramMechanism;
use serde::Deserialize;
use serde::Serialize;

/// Every SCRAM credential of the cluster, by user then mechanism.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramImage {
    pub users: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
}

/// Remove `user`'s credential for `mechanism`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramDeletion {
    pub user: String,
    pub mechanism: ScramMechanism,
}

/// Set `user`'s credential for `mechanism` (derived from the salted
/// password by the proposing broker).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramUpsertion {
    pub user: String,
    pub mechanism: ScramMechanism,
    pub credential: ScramCredential,
}

/// Why one user's alteration was refused; each maps to the Kafka error
/// named, and the message is Kafka's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ScramCredentialError {
    /// UNACCEPTABLE_CREDENTIAL.
    #[error("Username must not be empty")]
    EmptyUser,
    /// UNSUPPORTED_SASL_MECHANISM.
    #[error("Unknown SCRAM mechanism")]
    UnknownMechanism,
    /// UNACCEPTABLE_CREDENTIAL.
    #[error("Too few iterations")]
    TooFewIterations,
    /// UNACCEPTABLE_CREDENTIAL.
    #[error("Too many iterations")]
    TooManyIterations,
    /// DUPLICATE_RESOURCE: Kafka keys an alteration by user, so one request
    /// may change one credential per user.
    #[error("A user credential cannot be altered twice in the same request")]
    AlteredTwice,
    /// RESOURCE_NOT_FOUND.
    #[error("Attempt to delete a user credential that does not exist")]
    NotFound,
}

/// One user's outcome of an alteration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramAlterationResult {
    pub user: String,
    pub outcome: Result<(), ScramCredentialError>,
}

/// A deletion as the request carries it (mechanism as Kafka's type byte).
pub struct RequestedDeletion<'a> {
    pub user: &'a str,
    pub mechanism: i8,
}

/// An upsertion as the request carries it.
pub struct RequestedUpsertion<'a> {
    pub user: &'a str,
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: &'a [u8],
    pub salted_password: &'a [u8],
}

/// What a request asks, after the request-only checks: the operations to
/// propose, and the users refused already.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScramAlteration {
    pub deletions: Vec<ScramDeletion>,
    pub upsertions: Vec<ScramUpsertion>,
    pub refused: Vec<ScramAlterationResult>,
}

impl ScramAlteration {
    /// Kafka's `ScramControlManager.alterCredentials` before the image is
    /// looked at: a user named by two operations is refused (all of its
    /// operations), then each remaining operation is checked on its own.
    /// Upsertions get their credential derived here.
    pub fn plan(
        deletions: &[RequestedDeletion<'_>],
        upsertions: &[RequestedUpsertion<'_>],
    ) -> ScramAlteration {
        let mut times: BTreeMap<&str, usize> = BTreeMap::new();
        let users = deletions
            .iter()
            .map(|d| d.user)
            .chain(upsertions.iter().map(|u| u.user));
        for user in users {
            *times.entry(user).or_default() += 1;
        }
        let mut plan = ScramAlteration::default();
        for (user, n) in &times {
            if *n > 1 {
                plan.refused.push(ScramAlterationResult {
                    user: (*user).to_owned(),
                    outcome: Err(ScramCredentialError::AlteredTwice),
                });
            }
        }
        let once = |user: &str| times.get(user) == Some(&1);
        for d in deletions.iter().filter(|d| once(d.user)) {
            match check_user_and_mechanism(d.user, d.mechanism) {
                Ok(mechanism) => plan.deletions.push(ScramDeletion {
                    user: d.user.to_owned(),
                    mechanism,
                }),
                Err(error) => plan.refused.push(ScramAlterationResult {
                    user: d.user.to_owned(),
                    outcome: Err(error),
                }),
            }
        }
        for u in upsertions.iter().filter(|u| once(u.user)) {
            let checked = check_user_and_mechanism(u.user, u.mechanism).and_then(|mechanism| {
                let iterations = u32::try_from(u.iterations)
                    .map_err(|_| ScramCredentialError::TooFewIterations)?;
                check_iterations(mechanism, iterations)?;
                Ok((mechanism, iterations))
            });
            match checked {
                Ok((mechanism, iterations)) => plan.upsertions.push(ScramUpsertion {
                    user: u.user.to_owned(),
                    mechanism,
                    credential: ScramCredential::from_salted_password(
                        mechanism,
                        u.salt.to_vec(),
                        u.salted_password,
                        iterations,
                    ),
                }),
                Err(error) => plan.refused.push(ScramAlterationResult {
                    user: u.user.to_owned(),
                    outcome: Err(error),
                }),
            }
        }
        plan
    }
}

fn check_user_and_mechanism(
    user: &str,
    mechanism: i8,
) -> Result<ScramMechanism, ScramCredentialError> {
    if user.is_empty() {
        return Err(ScramCredentialError::EmptyUser);
    }
    ScramMechanism::from_wire_type(mechanism).ok_or(ScramCredentialError::UnknownMechanism)
}

fn check_iterations(
    mechanism: ScramMechanism,
    iterations: u32,
) -> Result<(), ScramCredentialError> {
    if iterations < mechanism.min_iterations() {
        Err(ScramCredentialError::TooFewIterations)
    } else if iterations > mechanism.max_iterations() {
        Err(ScramCredentialError::TooManyIterations)
    } else {
        Ok(())
    }
}

/// One user's answer to DescribeUserScramCredentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramUserDescription {
    pub user: String,
    pub outcome: Result<Vec<(ScramMechanism, u32)>, ScramDescribeError>,
}

/// Why a user named in DescribeUserScramCredentials has no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScramDescribeError {
    /// RESOURCE_NOT_FOUND.
    #[error("Attempt to describe a user credential that does not exist: {user}")]
    NotFound { user: String },
    /// DUPLICATE_RESOURCE.
    #[error(
        "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
    )]
    Duplicate { user: String },
}

impl ScramImage {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Kafka's `ScramImage.describe`: every user with a credential when
    /// `users` is `None` or empty; else each named user once, in name order.
    pub fn describe(&self, users: Option<&[&str]>) -> Vec<ScramUserDescription> {
        let describe_one = |user: &str| {
            let outcome = match self.users.get(user) {
                Some(creds) if !creds.is_empty() => {
                    Ok(creds.iter().map(|(m, c)| (*m, c.iterations)).collect())
                }
                _ => Err(ScramDescribeError::NotFound {
                    user: user.to_owned(),
                }),
            };
            ScramUserDescription {
                user: user.to_owned(),
                outcome,
            }
        };
        match users {
            None | Some([]) => self.users.keys().map(|u| describe_one(u)).collect(),
            Some(users) => {
                let mut times: BTreeMap<&str, usize> = BTreeMap::new();
                for u in users {
                    *times.entry(u).or_default() += 1;
                }
                times
                    .into_iter()
                    .map(|(user, n)| {
                        if n > 1 {
                            ScramUserDescription {
                                user: user.to_owned(),
                                outcome: Err(ScramDescribeError::Duplicate {
                                    user: user.to_owned(),
                                }),
                            }
                        } else {
                            describe_one(user)
                        }
                    })
                    .collect()
            }
        }
    }

    /// Apply one AlterUserScramCredentials: every operation is checked
    /// against the image as it was before the command (as Kafka's
    /// controller, which builds all records first), and the accepted ones
    /// are applied together. Per user, in the order the users come.
    pub(crate) fn alter(
        &mut self,
        deletions: &[ScramDeletion],
        upsertions: &[ScramUpsertion],
    ) -> Vec<ScramAlterationResult> {
        let mut times: BTreeMap<&str, usize> = BTreeMap::new();
        for user in deletions
            .iter()
            .map(|d| d.user.as_str())
            .chain(upsertions.iter().map(|u| u.user.as_str()))
        {
            *times.entry(user).or_default() += 1;
        }
        let mut results = Vec::with_capacity(times.len());
        let mut twice_reported = Vec::new();
        let mut check = |user: &str, check: Result<(), ScramCredentialError>| {
            let outcome = if times.get(user).is_some_and(|n| *n > 1) {
                if twice_reported.contains(&user.to_owned()) {
                    return false;
                }
                twice_reported.push(user.to_owned());
                Err(ScramCredentialError::AlteredTwice)
            } else {
                check
            };
            let ok = outcome.is_ok();
            results.push(ScramAlterationResult {
                user: user.to_owned(),
                outcome,
            });
            ok
        };
        let accepted_deletions: Vec<&ScramDeletion> = deletions
            .iter()
            .filter(|d| {
                let exists = self
                    .users
                    .get(&d.user)
                    .is_some_and(|c| c.contains_key(&d.mechanism));
                let verdict = if d.user.is_empty() {
                    Err(ScramCredentialError::EmptyUser)
                } else if !exists {
                    Err(ScramCredentialError::NotFound)
                } else {
                    Ok(())
                };
                check(&d.user, verdict)
            })
            .collect();
        let accepted_upsertions: Vec<&ScramUpsertion> = upsertions
            .iter()
            .filter(|u| {
                let verdict = if u.user.is_empty() {
                    Err(ScramCredentialError::EmptyUser)
                } else {
                    check_iterations(u.mechanism, u.credential.iterations)
                };
                check(&u.user, verdict)
            })
            .collect();
        for d in accepted_deletions {
            if let Entry::Occupied(mut creds) = self.users.entry(d.user.clone()) {
                creds.get_mut().remove(&d.mechanism);
                if creds.get().is_empty() {
                    creds.remove();
                }
            }
        }
        for u in accepted_upsertions {
            self.users
                .entry(u.user.clone())
                .or_default()
                .insert(u.mechanism, u.credential.clone());
        }
        results
    }

    /// What [`ScramImage::alter`] would answer, without changing the image,
    /// so apply copies the shared image only when something is accepted.
    pub(crate) fn outcomes(
        &self,
        deletions: &[ScramDeletion],
        upsertions: &[ScramUpsertion],
    ) -> Vec<ScramAlterationResult> {
        let mut probe = ScramImage::default();
        // Only the users named matter; copy them, not the whole image.
        for user in deletions
            .iter()
            .map(|d| &d.user)
            .chain(upsertions.iter().map(|u| &u.user))
        {
            if let Some(creds) = self.users.get(user) {
                probe.users.insert(user.clone(), creds.clone());
            }
        }
        probe.alter(deletions, upsertions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ScramCredentialError as E;

    const SHA256: i8 = 1;
    const SHA512: i8 = 2;

    fn upsert(user: &str, mechanism: i8, iterations: i32) -> RequestedUpsertion<'_> {
        RequestedUpsertion {
            user,
            mechanism,
            iterations,
            salt: b"salt",
            salted_password: b"salted",
        }
    }

    fn delete(user: &str, mechanism: i8) -> RequestedDeletion<'_> {
        RequestedDeletion { user, mechanism }
    }

    fn refused(plan: &ScramAlteration) -> Vec<(&str, ScramCredentialError)> {
        plan.refused
            .iter()
            .map(|r| (r.user.as_str(), r.outcome.clone().unwrap_err()))
            .collect()
    }

    /// The request-only rules of Kafka's `ScramControlManager`.
    #[test]
    fn plan_refuses_what_the_request_shows_wrong() {
        let plan = ScramAlteration::plan(
            &[delete("", SHA256), delete("d", 0), delete("twice", SHA256)],
            &[
                upsert("", SHA256, 4096),
                upsert("m", 3, 4096),
                upsert("few", SHA256, 4095),
                upsert("neg", SHA256, -1),
                upsert("many", SHA512, 16385),
                upsert("twice", SHA512, 4096),
                upsert("ok", SHA512, 16384),
                upsert("min", SHA256, 4096),
            ],
        );
        let mut got = refused(&plan);
        got.sort_by(|a, b| a.0.cmp(b.0));
        assert_eq!(
            got,
            vec![
                ("", E::AlteredTwice),
                ("d", E::UnknownMechanism),
                ("few", E::TooFewIterations),
                ("m", E::UnknownMechanism),
                ("many", E::TooManyIterations),
                ("neg", E::TooFewIterations),
                ("twice", E::AlteredTwice),
            ]
        );
        assert!(plan.deletions.is_empty());
        let users: Vec<_> = plan.upsertions.iter().map(|u| u.user.as_str()).collect();
        assert_eq!(users, ["ok", "min"]);
        let ok = &plan.upsertions[0];
        assert_eq!(ok.mechanism, ScramMechanism::Sha512);
        assert_eq!(
            ok.credential,
            ScramCredential::from_salted_password(
                ScramMechanism::Sha512,
                b"salt".to_vec(),
                b"salted",
                16384
            ),
            "the credential, not the salted password, is what is proposed"
        );
        let single_empty = ScramAlteration::plan(&[], &[upsert("", SHA256, 4096)]);
        assert_eq!(refused(&single_empty), vec![("", E::EmptyUser)]);
    }

    fn cred(iterations: u32) -> ScramCredential {
        ScramCredential::from_salted_password(
            ScramMechanism::Sha256,
            b"s".to_vec(),
            b"p",
            iterations,
        )
    }

    fn up(user: &str, mechanism: ScramMechanism, iterations: u32) -> ScramUpsertion {
        ScramUpsertion {
            user: user.into(),
            mechanism,
            credential: cred(iterations),
        }
    }

    fn del(user: &str, mechanism: ScramMechanism) -> ScramDeletion {
        ScramDeletion {
            user: user.into(),
            mechanism,
        }
    }

    #[test]
    fn alter_checks_against_the_image_and_applies_the_rest() {
        use ScramMechanism::{Sha256, Sha512};
        let mut image = ScramImage::default();
        let results = image.alter(
            &[del("ghost", Sha256)],
            &[up("alice", Sha256, 4096), up("bob", Sha512, 8192)],
        );
        assert_eq!(results[0].outcome, Err(E::NotFound));
        assert!(results[1..].iter().all(|r| r.outcome.is_ok()));
        assert_eq!(image.users.len(), 2);
        // A replayed out-of-range or twice-named command is refused in apply too.
        let results = image.alter(
            &[del("alice", Sha256)],
            &[up("alice", Sha512, 4096), up("carol", Sha256, 100)],
        );
        assert_eq!(
            results
                .iter()
                .map(|r| (r.user.as_str(), r.outcome.clone()))
                .collect::<Vec<_>>(),
            vec![
                ("alice", Err(E::AlteredTwice)),
                ("carol", Err(E::TooFewIterations))
            ]
        );
        assert!(image.users["alice"].contains_key(&Sha256));
        // Deleting a user's last credential forgets the user.
        let results = image.alter(&[del("alice", Sha256)], &[]);
        assert_eq!(results[0].outcome, Ok(()));
        assert!(!image.users.contains_key("alice"));
        // Deleting the other mechanism than the one stored: not found.
        let results = image.alter(&[del("bob", Sha256)], &[]);
        assert_eq!(results[0].outcome, Err(E::NotFound));
        assert_eq!(
            image.outcomes(&[del("bob", Sha512)], &[])[0].outcome,
            Ok(())
        );
        assert!(image.users.contains_key("bob"), "outcomes changes nothing");
    }

    /// Kafka's `ScramImage.describe`.
    #[test]
    fn describe_all_named_missing_and_duplicate() {
        use ScramMechanism::{Sha256, Sha512};
        let mut image = ScramImage::default();
        image.alter(&[], &[up("alice", Sha256, 4096), up("bob", Sha512, 8192)]);
        image.alter(&[], &[up("alice", Sha512, 5000)]);
        let all = image.describe(None);
        assert_eq!(
            all,
            vec![
                ScramUserDescription {
                    user: "alice".into(),
                    outcome: Ok(vec![(Sha256, 4096), (Sha512, 5000)]),
                },
                ScramUserDescription {
                    user: "bob".into(),
                    outcome: Ok(vec![(Sha512, 8192)]),
                },
            ]
        );
        assert_eq!(image.describe(Some(&[])), all);
        let named = image.describe(Some(&["bob", "nobody", "alice", "alice"]));
        let outcomes: Vec<_> = named
            .iter()
            .map(|d| (d.user.as_str(), d.outcome.clone()))
            .collect();
        assert_eq!(
            outcomes,
            vec![
                (
                    "alice",
                    Err(ScramDescribeError::Duplicate {
                        user: "alice".into()
                    })
                ),
                ("bob", Ok(vec![(Sha512, 8192)])),
                (
                    "nobody",
                    Err(ScramDescribeError::NotFound {
                        user: "nobody".into()
                    })
                ),
            ]
        );
        assert_eq!(
            named[2].outcome.clone().unwrap_err().to_string(),
            "Attempt to describe a user credential that does not exist: nobody"
        );
    }
}
