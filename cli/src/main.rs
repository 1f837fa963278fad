use std::process::ExitCode;

use clap::{Parser, Subcommand};
#[cfg(feature = "local")]
use relay_cli::local;
use relay_cli::{dlq, genesys_setup, output, secrets, send};

/// genesys-relay's command line: the local stack and demo, signed test sends, DLQ inspection and
/// redrive, secret rotation, Genesys setup.
#[derive(Parser)]
#[command(name = "relay", version, about, propagate_version = true)]
struct Cli {
    /// Print results as JSON, for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign an event file with any scheme the receiver accepts and send it to a URL.
    Send(send::Args),
    /// Inspect a dead-letter queue and move its messages back.
    Dlq {
        #[command(subcommand)]
        command: dlq::Command,
    },
    /// See where rotating secrets stand, and rotate one now.
    Secrets {
        #[command(subcommand)]
        command: secrets::Command,
    },
    /// Run the whole pipeline on this machine.
    #[cfg(feature = "local")]
    Local {
        #[command(subcommand)]
        command: local::Command,
    },
    /// Configure Genesys Cloud to feed genesys-relay.
    Genesys {
        #[command(subcommand)]
        command: genesys_setup::Command,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Send(args) => send::run(args).await,
        Command::Dlq { command } => dlq::run(command).await,
        Command::Secrets { command } => secrets::run(command).await,
        Command::Genesys { command } => genesys_setup::run(command).await,
        #[cfg(feature = "local")]
        Command::Local { command } => local::run(command).await,
    };
    match result {
        Ok(report) => {
            output::print(&report, cli.json);
            ExitCode::SUCCESS
        }
        Err(error) => {
            if cli.json {
                println!("{}", serde_json::json!({"error": format!("{error:#}")}));
            } else {
                eprintln!("{} {error:#}", output::bad("error:"));
            }
            ExitCode::FAILURE
        }
    }
}
