//! `relay local`: the whole pipeline on this machine, and the demo that shows it working.

pub mod counters;
pub mod demo;
pub mod http;
pub mod rotation_soak;
pub mod soak;
pub mod stack;

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

use crate::output::Report;

/// Local stack commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the local stack (local AWS from template.yaml, local Twilio and Genesys, the
    /// receiver, processor and EventBridge handler) and keep it running until Ctrl-C.
    Up {
        /// Port of the receiver's routes.
        #[arg(long, default_value_t = 3000)]
        port: u16,
        /// Rules JSON file for the functions (default: the demo's rules).
        #[arg(long)]
        rules: Option<std::path::PathBuf>,
        /// How the receiver authenticates Genesys webhooks, so any scheme a deployment may
        /// choose can be tried; the local webhook secret takes the form the scheme needs.
        #[arg(
            long,
            value_enum,
            env = "GENESYS_WEBHOOK_AUTH",
            default_value_t = stack::GenesysAuth::Hmac
        )]
        genesys_auth: stack::GenesysAuth,
        /// The queues' kind, as the template's QueueType.
        #[arg(long, value_enum, default_value_t = stack::QueueType::Standard)]
        queue_type: stack::QueueType,
    },
    /// Start the local stack, play a scenario, and report what happened; exits 0 only when the
    /// outcome is the expected one.
    Demo {
        /// Port of the receiver's routes (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// The queues' kind, as the template's QueueType.
        #[arg(long, value_enum, default_value_t = stack::QueueType::Standard)]
        queue_type: stack::QueueType,
    },
    /// Send many events through the local stack while Twilio fails, the local AWS goes away and
    /// a processor is killed, then check every event's outcome; exits 0 only when all hold.
    Soak {
        /// Deliveries to send, a tenth of them repeats.
        #[arg(long, default_value_t = 5000)]
        events: usize,
        /// Seed of the events, repeats and Twilio's failures.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seconds the local AWS is cut mid-run.
        #[arg(long, default_value_t = 5)]
        outage_secs: u64,
        /// Seconds the local Twilio answers every send 503, from early in the run: longer than
        /// the first retries, far inside the retry budget.
        #[arg(long, default_value_t = 90)]
        twilio_outage_secs: u64,
        /// Deliveries per second, at most (the senders also wait while the queue is long).
        #[arg(long, default_value_t = 20)]
        rate: u32,
        /// The queues' kind, as the template's QueueType.
        #[arg(long, value_enum, default_value_t = stack::QueueType::Standard)]
        queue_type: stack::QueueType,
    },
    /// Send events through the local stack while every kind of credential rotates (webhook and
    /// signing secrets, Twilio API key, Genesys OAuth clients), then check that no valid request
    /// was refused and no event lost; exits 0 only when all hold.
    RotationSoak {
        /// Events to send.
        #[arg(long, default_value_t = 200)]
        events: usize,
        /// Events per second.
        #[arg(long, default_value_t = 10)]
        rate: u32,
    },
}

/// Runs a local command.
pub async fn run(command: Command) -> Result<Report> {
    match command {
        Command::Demo { port, queue_type } => demo::run(port, queue_type).await,
        Command::RotationSoak { events, rate } => {
            rotation_soak::run(rotation_soak::Settings { events, rate }).await
        }
        Command::Soak {
            events,
            seed,
            outage_secs,
            twilio_outage_secs,
            rate,
            queue_type,
        } => {
            soak::run(soak::Settings {
                events,
                seed,
                outage: std::time::Duration::from_secs(outage_secs),
                twilio_outage: std::time::Duration::from_secs(twilio_outage_secs),
                rate,
                queue_type,
            })
            .await
        }
        Command::Up {
            port,
            rules,
            genesys_auth,
            queue_type,
        } => {
            let rules = match rules {
                Some(path) => std::fs::read_to_string(path)?,
                None => demo::RULES.to_owned(),
            };
            lambda_runtime::tracing::init_default_subscriber();
            let root = stack::project_root()?;
            let choices = stack::Choices {
                auth: genesys_auth,
                queue_type,
            };
            let stack = stack::Stack::up_with(
                &root,
                port,
                &rules,
                stack::ProcessorRuns::default(),
                choices,
            )
            .await?;
            let lines = vec![
                format!(
                    "receiver      {}/webhooks/genesys, /webhooks/twilio/status, /health",
                    stack.receiver_url
                ),
                format!("local AWS     {}", stack.endpoint),
                format!("main queue    {}", stack.resources.queue_url),
                format!("DLQ           {}", stack.resources.dlq_url),
                format!("event DLQ     {}", stack.resources.event_dlq_url),
                format!(
                    "event bus     {} (put-events to it)",
                    stack.resources.event_bus
                ),
                format!("Twilio        {}", stack.twilio.base_url()),
                format!("Genesys       {}", stack.genesys.base_url()),
                format!(
                    "webhook auth  {} (GENESYS_WEBHOOK_AUTH), secret {:?}",
                    genesys_auth.name(),
                    genesys_auth.secret()
                ),
                format!("send with     {}", stack.send_command(&root)),
                "running; Ctrl-C (or SIGTERM) stops everything".to_owned(),
            ];
            for line in &lines {
                eprintln!("{line}");
            }
            // Ctrl-C, or a plain `kill`: either way everything the stack started is stopped.
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                interrupted = tokio::signal::ctrl_c() => interrupted?,
                _ = terminate.recv() => {}
            }
            drop(stack);
            Ok(Report::new(
                vec!["stopped".into()],
                json!({"stopped": true}),
            ))
        }
    }
}
