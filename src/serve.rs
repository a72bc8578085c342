//! `vivarium serve`: the actions service, until Ctrl-C or SIGTERM.

use serde_json::json;
use vivarium_server::ServerConfig;

use crate::cli::{Cli, ServeArgs};
use crate::exit::{Exit, Failure};

/// Starts the service, prints how to log in, and stops gracefully on a signal.
pub fn run(cli: &Cli, args: &ServeArgs) -> Result<Exit, Failure> {
    let mut overrides = serde_json::to_value(args).map_err(|e| Failure::new(Exit::Internal, e))?;
    if let Some(cache_dir) = &cli.cache_dir {
        overrides["cache_dir"] = json!(cache_dir);
    }
    let config = ServerConfig::load(args.config.as_deref(), overrides)
        .map_err(|e| Failure::new(Exit::Usage, e))?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failure::new(Exit::Internal, e))?;
    runtime
        .block_on(serve(config))
        .map_err(|e| Failure::new(Exit::Internal, e))?;
    Ok(Exit::Success)
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
