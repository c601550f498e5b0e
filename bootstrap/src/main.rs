//! `agora-bootstrap`: parse the command line, start the peer, print its addresses, run until
//! SIGTERM or Ctrl-C.

use anyhow::Context;
use clap::Parser;

use agora_bootstrap::{Args, Bootstrap, Settings};

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Plain text under systemd (journald keeps the fields); colours on a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agora-bootstrap: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let settings = Settings::load(args).context("cannot read the configuration")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let peer = Bootstrap::start(settings)
            .await
            .context("cannot start the bootstrap peer")?;
        println!("peer id: {}", peer.node().peer_id());
        for addr in peer.addresses().await {
            println!("address: {addr}");
        }
        if let Some(addr) = peer.metrics_addr() {
            println!("metrics: http://{addr}/metrics");
        }
        wait_for_signal().await.context("cannot wait for signals")?;
        tracing::info!("shutting down");
        peer.shutdown().await;
        Ok(())
    })
}

/// Returns on SIGTERM (systemd's stop) or SIGINT (Ctrl-C).
async fn wait_for_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => Ok(()),
            r = tokio::signal::ctrl_c() => r,
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
