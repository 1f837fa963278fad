//! `relay local up --genesys-auth`: for every Genesys webhook scheme, the local stack's receiver
//! accepts the sample webhook sent with the `relay send` command line the stack prints, and refuses
//! one signed for another scheme. Needs the project's `.venv` (moto server), as `relay local` does.

use std::path::{Path, PathBuf};

use clap::Parser;
use relay_cli::local::demo::RULES;
use relay_cli::local::stack::{Choices, GenesysAuth, ProcessorRuns, Stack};
use relay_cli::send;

#[derive(Parser)]
struct Relay {
    #[command(subcommand)]
    command: RelayCommand,
}

#[derive(clap::Subcommand)]
enum RelayCommand {
    Send(send::Args),
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `relay send` arguments parsed from a printed command line.
fn send_args(line: &str) -> send::Args {
    match Relay::try_parse_from(line.split_whitespace())
        .unwrap_or_else(|e| panic!("{line}: {e}"))
        .command
    {
        RelayCommand::Send(args) => args,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_genesys_auth_scheme_accepts_the_printed_send_and_refuses_another_scheme() {
    let root = root();
    for auth in GenesysAuth::ALL {
        let choices = Choices {
            auth,
            ..Choices::default()
        };
        let stack = Stack::up_with(&root, free_port(), RULES, ProcessorRuns::default(), choices)
            .await
            .unwrap_or_else(|e| panic!("{}: the local stack starts: {e:#}", auth.name()));
        assert_eq!(stack.genesys_auth, auth);

        let line = stack.send_command(&root);
        assert!(
            line.contains(&format!("--scheme {}", auth.name())),
            "{line}"
        );
        let report = send::run(send_args(&line))
            .await
            .unwrap_or_else(|e| panic!("{}: {line}: {e:#}", auth.name()));
        assert_eq!(
            report.json["status"],
            202,
            "{}: {}",
            auth.name(),
            report.json
        );

        // The same webhook signed for another scheme, with that scheme's local secret.
        let other = if auth == GenesysAuth::Hmac {
            GenesysAuth::Bearer
        } else {
            GenesysAuth::Hmac
        };
        let wrong = line
            .replace(
                &format!("--scheme {}", auth.name()),
                &format!("--scheme {}", other.name()),
            )
            .replace(auth.secret(), other.secret());
        let refused = send::run(send_args(&wrong))
            .await
            .expect_err("a request signed for another scheme is refused");
        assert!(
            format!("{refused:#}").contains("401"),
            "{}: {refused:#}",
            auth.name()
        );
        drop(stack);
    }
}
