//! `vivarium serve`: the actions service, until Ctrl-C or SIGTERM.

use std::path::PathBuf;

use serde::Serialize;
use vivarium_server::ServerConfig;

use crate::cli::{Cli, ServeArgs};
use crate::exit::{Exit, Failure};

/// Starts the service, prints how to log in, and stops gracefully on a signal.
pub fn run(cli: &Cli, args: &ServeArgs) -> Result<Exit, Failure> {
    let overrides = Overrides {
        args,
        cache_dir: cli.cache_dir.clone(),
        runtime: cli.runtime.map(|choice| choice.name()),
    };
    let config = ServerConfig::load(args.config.as_deref(), overrides)
        .map_err(|e| Failure::new(Exit::Usage, e))?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failure::new(Exit::Internal, e))?;
    runtime
        .block_on(serve(config))
        .map_err(|e| Failure::new(Exit::Internal, e))?;
    Ok(Exit::Success)
}

/// The settings given on the command line, serialized straight into the configuration (not
/// through a JSON value, whose exact-number representation the configuration cannot read).
#[derive(Serialize)]
struct Overrides<'a> {
    #[serde(flatten)]
    args: &'a ServeArgs,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime: Option<&'static str>,
}

async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let server = vivarium_server::start(config).await?;
    println!("Vivarium is serving on http://{}", server.addr);
    if let Some((email, password)) = &server.generated_root {
        println!("Root user created: {email}");
        println!("Password (shown once, keep it safe): {password}");
        println!(
            "Try: curl -u '{email}:{password}' http://{}/api/default/actions",
            server.addr
        );
    }
    wait_for_signal().await;
    println!("Shutting down: finishing running calls...");
    server.shutdown().await
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
