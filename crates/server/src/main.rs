//! `dialtone-server`: runs the signaling server, or mints sign-in tokens with its secret.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use dialtone_protocol::UserId;
use dialtone_server::token::parse_ttl;
use dialtone_server::{Secret, ServerConfig, mint};

/// Dialtone's signaling server: sign-in with tokens, presence, multi-device ringing, calls, relay.
///
/// With no subcommand it serves. Tokens are signed with the secret in --secret-file, which is created
/// with a random secret the first time; `token` and `serve` find the same file by default.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Action>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Action {
    /// Serve clients (the default).
    Serve(ServeArgs),
    /// Mint a sign-in token for a user and print it.
    Token {
        /// The user id (letters, digits and . _ - @ +).
        #[arg(long)]
        user: UserId,
        /// The display name; the user id when omitted.
        #[arg(long)]
        name: Option<String>,
        /// How long the token is valid: 90s, 15m, 12h, 30d.
        #[arg(long, default_value = "30d", value_parser = parse_ttl)]
        ttl: Duration,
        /// The server's secret (created when missing).
        #[arg(long, env = "DIALTONE_SECRET_FILE")]
        secret_file: Option<PathBuf>,
    },
}

#[derive(clap::Args, Clone)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free one (printed at start).
    #[arg(long, default_value = "127.0.0.1:7600", env = "DIALTONE_LISTEN")]
    listen: SocketAddr,
    /// The server's secret (created when missing).
    #[arg(long, env = "DIALTONE_SECRET_FILE")]
    secret_file: Option<PathBuf>,
    /// How long invitees ring by default.
    #[arg(long, default_value = "30s", value_parser = parse_ttl)]
    ring_timeout: Duration,
    /// How long someone may stay alone in a group call.
    #[arg(long, default_value = "180s", value_parser = parse_ttl)]
    idle_timeout: Duration,
    /// Most simultaneous connections.
    #[arg(long, default_value_t = 100_000)]
    max_connections: usize,
}

fn default_secret_file() -> Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("org", "Dialtone", "dialtone-server")
        .context("cannot find a home directory for the secret file; pass --secret-file")?;
    Ok(dirs.data_dir().join("secret"))
}

fn load_secret(path: Option<PathBuf>) -> Result<(Secret, PathBuf)> {
    let path = match path {
        Some(path) => path,
        None => default_secret_file()?,
    };
    Ok((Secret::load_or_create(&path)?, path))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Action::Token { user, name, ttl, secret_file }) => {
            let (secret, _) = load_secret(secret_file)?;
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            let name = name.unwrap_or_else(|| user.to_string());
            if ttl.is_zero() {
                bail!("--ttl must be longer than zero");
            }
            println!("{}", mint(&secret, &user, &name, now + ttl.as_secs())?);
            Ok(())
        }
        Some(Action::Serve(args)) => serve(args),
        None => serve(cli.serve),
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let (secret, secret_path) = load_secret(args.secret_file)?;
    let mut config = ServerConfig::new(args.listen, secret);
    config.hub.ring_timeout = args.ring_timeout;
    config.hub.idle_timeout = args.idle_timeout;
    config.max_connections = args.max_connections;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let server = dialtone_server::spawn(config).await?;
        tracing::info!(secret = %secret_path.display(), "tokens: dialtone-server token --user NAME");
        println!("listening on {}", server.url());
        shutdown_signal().await;
        tracing::info!("shutting down");
        server.shutdown().await;
        Ok(())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
