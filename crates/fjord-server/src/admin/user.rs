//! `fjord user ...`: SCRAM credentials, like `kafka-configs.sh --entity-type
//! users --alter --add-config 'SCRAM-SHA-512=[password=...]'`, through
//! AlterUserScramCredentials and DescribeUserScramCredentials.
//!
//! The password is salted here, as Kafka's tools do: the request carries a
//! fresh random salt and PBKDF2's output, never the password. It may come
//! from the command line, an environment variable or stdin, so it need not
//! show in `ps` or a shell history.

use std::io::BufRead;

use anyhow::{Context, Result, anyhow, bail};
use fjord_scram::ScramMechanism;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::describe_user_scram_credentials_response::DescribeUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::ConnectArgs;
use super::cluster::Cluster;
use super::error::KafkaError;
use super::table::render_table;

/// Kafka's default iterations (kafka-configs.sh, `ScramFormatter`).
const DEFAULT_ITERATIONS: u32 = 4096;
/// Bytes of a fresh salt.
const SALT_LEN: usize = 32;

/// `--mechanism`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MechanismArg {
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
}

impl MechanismArg {
    fn mechanism(self) -> ScramMechanism {
        match self {
            MechanismArg::ScramSha256 => ScramMechanism::Sha256,
            MechanismArg::ScramSha512 => ScramMechanism::Sha512,
        }
    }
}

/// Where the password comes from: exactly one.
#[derive(clap::Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct PasswordSource {
    /// The password itself (visible to `ps`; prefer the others).
    #[arg(long)]
    password: Option<String>,
    /// The name of an environment variable holding the password.
    #[arg(long = "password-env", value_name = "VAR")]
    password_env: Option<String>,
    /// Read the password from the first line of stdin.
    #[arg(long = "password-stdin")]
    password_stdin: bool,
}

impl PasswordSource {
    fn read(&self) -> Result<String> {
        if let Some(p) = &self.password {
            return Ok(p.clone());
        }
        if let Some(var) = &self.password_env {
            return std::env::var(var).with_context(|| format!("read the password from ${var}"));
        }
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("read the password from stdin")?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        if password.is_empty() {
            bail!("no password on stdin");
        }
        Ok(password)
    }
}

/// SCRAM user administration.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum UserCommand {
    /// Set a user's SCRAM credential for one mechanism (add or replace).
    Add {
        name: String,
        #[arg(long, value_enum)]
        mechanism: MechanismArg,
        #[command(flatten)]
        password: PasswordSource,
        /// PBKDF2 iterations, 4096 to 16384.
        #[arg(long, default_value_t = DEFAULT_ITERATIONS)]
        iterations: u32,
    },
    /// Remove a user's SCRAM credential for one mechanism.
    Remove {
        name: String,
        #[arg(long, value_enum)]
        mechanism: MechanismArg,
    },
    /// List users' SCRAM mechanisms and iterations (every user without names).
    List { names: Vec<String> },
}

/// Runs one user command, printing its result to stdout.
pub async fn run_user(connect: &ConnectArgs, cmd: UserCommand) -> Result<()> {
    let mut cluster = Cluster::connect(connect).await?;
    match cmd {
        UserCommand::Add {
            name,
            mechanism,
            password,
            iterations,
        } => {
            let m = mechanism.mechanism();
            let password = password.read()?;
            let salt = fjord_scram::random_bytes(SALT_LEN);
            let salted = m.salted_password(password.as_bytes(), &salt, iterations);
            let upsertion = ScramCredentialUpsertion::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_mechanism(m.wire_type())
                .with_iterations(i32::try_from(iterations).unwrap_or(i32::MAX))
                .with_salt(salt.into())
                .with_salted_password(salted.into());
            let request =
                AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion]);
            alter(
                &mut cluster,
                request,
                &format!("set {m} credential of {name}"),
            )
            .await?;
            println!("Set the {m} credential of user {name}.");
            Ok(())
        }
        UserCommand::Remove { name, mechanism } => {
            let m = mechanism.mechanism();
            let deletion = ScramCredentialDeletion::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_mechanism(m.wire_type());
            let request =
                AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion]);
            alter(
                &mut cluster,
                request,
                &format!("remove {m} credential of {name}"),
            )
            .await?;
            println!("Removed the {m} credential of user {name}.");
            Ok(())
        }
        UserCommand::List { names } => {
            let users = (!names.is_empty()).then(|| {
                names
                    .into_iter()
                    .map(|n| UserName::default().with_name(StrBytes::from_string(n)))
                    .collect()
            });
            let op = "describe user scram credentials";
            let client = cluster.any_broker().await?;
            let response = client
                .send(&DescribeUserScramCredentialsRequest::default().with_users(users))
                .await
                .context(op)?;
            KafkaError::check_with_message(
                response.error_code,
                response.error_message.as_ref(),
                op,
            )?;
            // The users found are printed; a user named but not found
            // fails the command after them.
            print!("{}", format_users(&response.results));
            for result in &response.results {
                KafkaError::check_with_message(
                    result.error_code,
                    result.error_message.as_ref(),
                    op,
                )?;
            }
            Ok(())
        }
    }
}

async fn alter(
    cluster: &mut Cluster,
    request: AlterUserScramCredentialsRequest,
    op: &str,
) -> Result<()> {
    let client = cluster.any_broker().await?;
    let response = client.send(&request).await.context(op.to_owned())?;
    let result = response
        .results
        .first()
        .ok_or_else(|| anyhow!("{op}: the broker answered no result"))?;
    KafkaError::check_with_message(result.error_code, result.error_message.as_ref(), op)?;
    Ok(())
}

fn format_users(results: &[DescribeUserScramCredentialsResult]) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .flat_map(|r| {
            r.credential_infos.iter().map(|c| {
                vec![
                    r.user.to_string(),
                    ScramMechanism::from_wire_type(c.mechanism)
                        .map_or_else(|| format!("UNKNOWN({})", c.mechanism), |m| m.to_string()),
                    c.iterations.to_string(),
                ]
            })
        })
        .collect();
    render_table(&["USER", "MECHANISM", "ITERATIONS"], &rows)
}
