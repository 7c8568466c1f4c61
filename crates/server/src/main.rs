//! `dialtone-server`: runs the signaling server, or mints sign-in tokens with its secret.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use dialtone_protocol::{Fingerprint, Invite, UserId};
use dialtone_server::token::parse_ttl;
use dialtone_server::{IceConfig, Secret, ServerConfig, TlsIdentity, TurnConfig, mint};

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
    /// Print an invite link: the server's address, a new sign-in token for the user and, when the server
    /// keeps a self-signed certificate beside its secret, that certificate's fingerprint. The app signs in
    /// from it with one click.
    Invite {
        /// The user id (letters, digits and . _ - @ +).
        #[arg(long)]
        user: UserId,
        /// The display name; the user id when omitted.
        #[arg(long)]
        name: Option<String>,
        /// The address the invited person's device reaches this server at: wss://HOST:PORT.
        #[arg(long, env = "DIALTONE_PUBLIC_URL")]
        url: String,
        /// How long the invitation works.
        #[arg(long, default_value = "7d", value_parser = parse_ttl)]
        ttl: Duration,
        /// The server's secret (created when missing).
        #[arg(long, env = "DIALTONE_SECRET_FILE")]
        secret_file: Option<PathBuf>,
        /// The fingerprint to pin instead of the self-signed certificate's (a certificate of your own:
        /// `--tls-cert`); `none` pins nothing (a certificate the system trusts).
        #[arg(long)]
        fingerprint: Option<String>,
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
    /// How long a device whose connection dropped keeps its place in its call (signing in again within
    /// it resumes the call; 0s: it leaves at once).
    #[arg(long, default_value = "20s", value_parser = parse_ttl)]
    resume_grace: Duration,
    /// Most simultaneous connections.
    #[arg(long, default_value_t = 100_000)]
    max_connections: usize,
    /// A STUN server clients should use (`stun:host:port`); repeat for more.
    #[arg(long = "stun", value_name = "URL", value_parser = parse_stun_url)]
    stun_urls: Vec<String>,
    /// A TURN server clients should use (`turn:host:port?transport=udp`); repeat for more URLs of it.
    /// Needs --turn-secret-file.
    #[arg(long = "turn", value_name = "URL", value_parser = parse_turn_url, requires = "turn_secret_file")]
    turn_urls: Vec<String>,
    /// The secret shared with the TURN server (coturn: `use-auth-secret` and `static-auth-secret`); each
    /// user gets credentials made from it at sign-in.
    #[arg(long, value_name = "PATH", env = "DIALTONE_TURN_SECRET_FILE", requires = "turn_urls")]
    turn_secret_file: Option<PathBuf>,
    /// How long TURN credentials work.
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    turn_ttl: Duration,
    /// Serve TLS (`wss://`) with this certificate chain (PEM, leaf first). Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key", conflicts_with = "tls_self_signed")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve TLS with a self-signed certificate, made the first time and kept beside the secret file;
    /// clients pin its fingerprint (printed at start; invite links carry it).
    #[arg(long)]
    tls_self_signed: bool,
    /// A host name or address the self-signed certificate names (repeatable); the listening address
    /// and `localhost` by default. Clients that pin the fingerprint do not check names.
    #[arg(long = "tls-name", value_name = "NAME", requires = "tls_self_signed")]
    tls_names: Vec<String>,
}

fn parse_stun_url(url: &str) -> Result<String, String> {
    dialtone_server::ice::check_stun_url(url).map(|()| url.to_owned()).map_err(|error| error.to_string())
}

fn parse_turn_url(url: &str) -> Result<String, String> {
    dialtone_server::ice::check_turn_url(url).map(|()| url.to_owned()).map_err(|error| error.to_string())
}

/// The STUN and TURN servers from the command line, the TURN secret read from its file.
fn ice_config(args: &ServeArgs) -> Result<IceConfig> {
    let turn = match &args.turn_secret_file {
        Some(path) => {
            let secret = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the TURN secret from {}", path.display()))?;
            let secret = secret.trim().to_owned();
            if secret.is_empty() {
                bail!("the TURN secret file {} is empty", path.display());
            }
            Some(TurnConfig { urls: args.turn_urls.clone(), secret, ttl: args.turn_ttl })
        }
        None => None,
    };
    Ok(IceConfig { stun_urls: args.stun_urls.clone(), turn })
}

/// Checks an invite's server address; true when it is `wss://` (a plain `ws://` one only works on the
/// machine itself or with the invited person's `--insecure`).
fn check_invite_url(url: &str) -> Result<bool> {
    if url.starts_with("wss://") {
        Ok(true)
    } else if url.starts_with("ws://") {
        eprintln!(
            "warning: {url} is not encrypted: the invited device will refuse to send its token there unless it is on this machine"
        );
        Ok(false)
    } else {
        bail!("--url must be the server's wss:// address (as the invited device reaches it), got {url:?}")
    }
}

/// The certificate to serve TLS with, from the flags; self-signed ones live beside the secret file.
fn tls_identity(args: &ServeArgs, secret_path: &std::path::Path) -> Result<Option<TlsIdentity>> {
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        return Ok(Some(TlsIdentity::from_pem_files(cert, key).context("cannot serve TLS")?));
    }
    if !args.tls_self_signed {
        return Ok(None);
    }
    let mut names = args.tls_names.clone();
    if names.is_empty() {
        names.push("localhost".into());
        if !args.listen.ip().is_unspecified() {
            names.push(args.listen.ip().to_string());
        }
    }
    let dir = secret_path.parent().unwrap_or(std::path::Path::new("."));
    let identity = TlsIdentity::self_signed_in(dir, &names).context("cannot serve TLS")?;
    tracing::info!(
        cert = %dir.join(dialtone_server::tls::SELF_SIGNED_CERT_FILE).display(),
        "self-signed certificate"
    );
    Ok(Some(identity))
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
        Some(Action::Invite { user, name, url, ttl, secret_file, fingerprint }) => {
            let (secret, secret_path) = load_secret(secret_file)?;
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            if ttl.is_zero() {
                bail!("--ttl must be longer than zero");
            }
            let parsed = check_invite_url(&url)?;
            let fingerprint = match fingerprint.as_deref() {
                Some("none") => None,
                Some(text) => Some(text.parse::<Fingerprint>()?),
                None => {
                    let cert = secret_path.with_file_name(dialtone_server::tls::SELF_SIGNED_CERT_FILE);
                    let key = secret_path.with_file_name(dialtone_server::tls::SELF_SIGNED_KEY_FILE);
                    if cert.exists() { Some(TlsIdentity::from_pem_files(&cert, &key)?.fingerprint) } else { None }
                }
            };
            if parsed && fingerprint.is_none() {
                eprintln!(
                    "note: no self-signed certificate beside the secret; the link pins none (the system's roots must trust the server's certificate)"
                );
            }
            let name = name.unwrap_or_else(|| user.to_string());
            let token = mint(&secret, &user, &name, now + ttl.as_secs())?;
            println!("{}", Invite { server: url, token, fingerprint });
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
    let ice = ice_config(&args)?;
    let (secret, secret_path) = load_secret(args.secret_file.clone())?;
    let tls = tls_identity(&args, &secret_path)?;
    let mut config = ServerConfig::new(args.listen, secret);
    config.tls = tls;
    config.hub.ring_timeout = args.ring_timeout;
    config.hub.idle_timeout = args.idle_timeout;
    config.hub.resume_grace = args.resume_grace;
    config.max_connections = args.max_connections;
    config.hub.ice = ice;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let server = dialtone_server::spawn(config).await?;
        tracing::info!(secret = %secret_path.display(), "tokens: dialtone-server token --user NAME");
        println!("listening on {}", server.url());
        if let Some(fingerprint) = server.fingerprint() {
            println!("certificate fingerprint {fingerprint}");
        }
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
