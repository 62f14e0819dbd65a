//! The raw command line (clap derive). Validation into a configuration happens in `config`.

use clap::{Parser, Subcommand};

/// ClearSkies: friend-to-friend folder sync.
#[derive(Debug, Parser)]
#[command(name = "clearskies", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start the daemon (in the background unless --foreground).
    Start {
        /// Stay attached to the terminal and log to stderr.
        #[arg(long)]
        foreground: bool,
        /// For tests only: accept `inject_fault` on the control socket (make an actor
        /// panic). Never use this on a daemon that holds data you care about.
        #[arg(long)]
        danger_fault_injection: bool,
    },
    /// Stop the daemon.
    Stop,
    /// Show the daemon's status.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Share a directory and print an access code for it (shares it first if needed).
    Share {
        /// The directory to share.
        path: std::path::PathBuf,
        /// What the code grants: read-write; read-only (the peer receives every change and
        /// can pass it on, but its own edits never leave it); or untrusted (an encrypted
        /// backup: the peer stores and serves only ciphertext it cannot read).
        #[arg(long, default_value = "read-write")]
        mode: String,
        /// How long the code stays valid: e.g. 90s, 30m, 24h, 7d, or never.
        #[arg(long, default_value = "24h")]
        expires: String,
        /// Let the code be used by more than one peer.
        #[arg(long)]
        multi_use: bool,
        /// Instead of a generated code, let peers join with this username and a password
        /// you choose (typed without echo, twice, when asked; --password; or one line on
        /// stdin).
        #[arg(long)]
        username: Option<String>,
        /// The password for --username (visible to other users of this computer in the
        /// process list: prefer typing it when asked, or stdin).
        #[arg(long, requires = "username")]
        password: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Join a share with an access code someone gave you: `attach CODE PATH`, or
    /// `attach --username U PATH` for a username and password they chose.
    Attach {
        /// CODE PATH, or only PATH with --username. The code is SYNC… or
        /// clearskies://directory/SYNC…; PATH is where the share goes (created if missing).
        #[arg(required = true, num_args = 1..=2, value_names = ["CODE", "PATH"])]
        args: Vec<String>,
        /// Join with a username the sharer chose instead of a code.
        #[arg(long)]
        username: Option<String>,
        /// The password for --username (or typed without echo when asked, or one line on stdin).
        #[arg(long, requires = "username")]
        password: Option<String>,
        /// Join with keys saved by `clearskies keys export` (to restore a share, for example
        /// from an untrusted backup, when no peer can give a code); needs --peer.
        #[arg(long, conflicts_with = "username", requires = "peer")]
        keys: Option<std::path::PathBuf>,
        /// Address of a computer that has the share, HOST:PORT (otherwise it is looked for
        /// through the configured trackers and on the LAN).
        #[arg(long)]
        peer: Option<String>,
        /// Without --peer: how long to look for one, in seconds.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=600))]
        timeout: u64,
        /// Sync only this directory of the share (e.g. photos/2024); it appears at the
        /// same place under PATH.
        #[arg(long)]
        subtree: Option<String>,
        /// Never sync paths matching this pattern (gitignore syntax, e.g. '*.tmp' or
        /// 'cache/'); repeat for more. A .clearskiesignore file in the share root adds more.
        #[arg(long)]
        exclude: Vec<String>,
        /// PATH already holds files: merge them with the share's (a file both sides have
        /// with different contents becomes a conflict copy, on every peer). Without it, a
        /// non-empty PATH is refused (or, on a terminal, you are asked).
        #[arg(long)]
        merge: bool,
    },
    /// List shared directories.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List peers: connected sessions and known addresses being dialled (or `peers remove`).
    #[command(args_conflicts_with_subcommands = true)]
    Peers {
        #[command(subcommand)]
        command: Option<PeersCommand>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Wait until a shared directory is in sync with its peers (progress on stderr: redrawn
    /// in place on a terminal, else a plain line every 5 s).
    Wait {
        /// The shared directory.
        path: std::path::PathBuf,
        /// Give up after this many seconds (exit 1); default: wait as long as it takes.
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Write a file of a share to stdout, from the local copy or streamed from a peer
    /// (for files this computer does not keep: --subtree, --exclude, not yet arrived).
    Cat {
        /// The shared directory.
        path: std::path::PathBuf,
        /// The file, relative to the shared directory (e.g. photos/a.jpg).
        file: String,
        /// First byte to send.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// How many bytes (default: to the end).
        #[arg(long)]
        length: Option<u64>,
        /// Print the file's loopback HTTP address instead (Range requests work: for a
        /// media player). It opens this one file only, until it expires (--expires) or the
        /// daemon restarts. Keep it off command lines other users can see (`ps`): e.g.
        /// `mpv --playlist=<(clearskies cat --url PATH FILE)`.
        #[arg(long, conflicts_with_all = ["offset", "length"])]
        url: bool,
        /// With --url: how long the address stays valid: e.g. 90s, 30m, 12h, 7d (at most 30d).
        #[arg(long, requires = "url", default_value = "12h")]
        expires: String,
    },
    /// Ask the share's connected untrusted peers (encrypted backups) to prove they still
    /// store some randomly chosen files, intact.
    VerifyBackup {
        /// The shared directory.
        path: std::path::PathBuf,
        /// How many files to check (each is read here and there).
        #[arg(long, default_value_t = 3)]
        files: u32,
    },
    /// Let a share record the deletions it held back because too many files were deleted
    /// at once (`status` and `list` say when that happened); they then reach the peers.
    /// Lists what is deleted first. If more files vanished since, they are held again.
    ConfirmDeletes {
        /// The shared directory.
        path: std::path::PathBuf,
        /// Only list the held deletions; confirm nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON (every path, up to 1000) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the versions a share kept of files that peers' changes replaced or deleted (in
    /// its .clearskies/versions, for versions_keep_days), of one file or of all.
    Versions {
        /// The shared directory.
        path: std::path::PathBuf,
        /// A file in the share (its path there, e.g. photos/cat.jpg).
        file: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Bring back a kept version of a file, as a new local change (peers receive it). What
    /// is there now is kept as a version first.
    #[command(disable_version_flag = true)]
    Restore {
        /// The shared directory.
        path: std::path::PathBuf,
        /// The file, as `versions` lists it (its path in the share).
        file: String,
        /// Which version: its time as `versions` shows it (YYYYMMDD-HHMMSS, or a prefix such
        /// as a date: the latest that matches). Default: the latest.
        #[arg(long)]
        version: Option<String>,
    },
    /// On a read-only share: drop the changes made here (moved into the versions, not
    /// deleted) and get the read-write peers' version back.
    Revert {
        /// The shared directory.
        path: std::path::PathBuf,
    },
    /// Stop syncing a directory. Its files are kept.
    Detach {
        /// The shared directory.
        path: std::path::PathBuf,
    },
    /// Log in to the web interface: print a one-time link (valid 5 minutes), and open it
    /// in the browser on a desktop.
    Open {
        /// Only print the link.
        #[arg(long)]
        print: bool,
    },
    /// Set the web interface's password (asked twice, or one line on standard input), for
    /// sessions of 30 days; sessions opened before end.
    WebPassword {
        /// Remove the password (log in with `clearskies open` only).
        #[arg(long)]
        remove: bool,
    },
    /// Pause syncing.
    Pause,
    /// Resume syncing.
    Resume,
    /// Access codes: make one, or check one someone sent you.
    #[command(subcommand)]
    Code(CodeCommand),
    /// A share's keys: save them to restore the share when no peer can give a code.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The daemon's settings: show them, or change one while it runs.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run a tracker server in the foreground (peers find each other through it).
    Tracker {
        /// Address to listen on, HOST:PORT (`[::]:49200` is every interface, IPv6 and IPv4).
        #[arg(long, default_value = "[::]:49200")]
        listen: std::net::SocketAddr,
        /// Shortest check-in interval (TTL) clients may choose, seconds.
        #[arg(long, default_value_t = 60)]
        min_ttl: u64,
        /// Longest TTL, seconds.
        #[arg(long, default_value_t = 3600)]
        max_ttl: u64,
        /// Clients at once; more connections are closed at once.
        #[arg(long, default_value_t = clearskies_protocol::tracker::DEFAULT_MAX_CLIENTS)]
        max_clients: usize,
        /// Members of one club (share or code ID); a full club takes no more.
        #[arg(long, default_value_t = clearskies_protocol::tracker::DEFAULT_MAX_MEMBERS)]
        max_members: usize,
    },
    /// The worker process (started by the monitor; not for direct use).
    #[command(hide = true)]
    Worker {
        /// Passed on by `start --danger-fault-injection`.
        #[arg(long)]
        danger_fault_injection: bool,
    },
    /// Break something in a daemon started with --danger-fault-injection (tests only):
    /// `panic ACTOR` (discovery, listener, share, transfer, control, metrics, peer; or an
    /// owner of the worker's state, which restarts the worker: shares, access, connections),
    /// `stall SECONDS` (the share's connections stop reading), `fail-db-write`.
    #[command(hide = true)]
    InjectFault {
        /// panic, stall or fail-db-write.
        fault: String,
        /// The actor (panic) or the seconds (stall).
        arg: Option<String>,
        /// For share and transfer: the shared directory (default: the first share).
        #[arg(long)]
        path: Option<std::path::PathBuf>,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell), or with --install
    /// write those for bash, zsh and fish where these shells look for a user's own.
    Completions {
        /// The shell.
        #[arg(required_unless_present = "install")]
        shell: Option<clap_complete::Shell>,
        /// Write bash, zsh and fish completions under ~/.local/share and ~/.config.
        #[arg(long, conflicts_with = "shell")]
        install: bool,
    },
    /// Print the man page clearskies(1) (roff), or write it and one page per subcommand
    /// into a directory.
    Manpage {
        /// Write clearskies.1 and clearskies-SUBCOMMAND.1 here.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Write them into share/man/man1 beside the binary's directory (for
        /// ~/.cargo/bin/clearskies: ~/.cargo/share/man/man1, where man finds them).
        #[arg(long, conflicts_with = "dir")]
        install: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PeersCommand {
    /// Disconnect a peer and refuse it from now on (saved with the share). It keeps the
    /// files it has, and the share's key of its level: see the README ("Removing a peer").
    Remove {
        /// The peer's ID as `clearskies peers` shows it (or its first 8+ hex digits).
        peer: String,
        /// Only in this shared directory (needed to refuse a peer that is not connected,
        /// by its whole ID).
        #[arg(long)]
        path: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Print the share's keys (JSON) for `attach --keys`. They are the share's secrets:
    /// anyone who has them has your level of access. Keep them offline.
    Export {
        /// The shared directory.
        path: std::path::PathBuf,
    },
    /// New keys for every level of a read-write share, handed to the peers connected now,
    /// so that an old key (a removed peer's, a leaked one) stops working. Peers not
    /// connected now must be invited again; outstanding codes are cancelled.
    Rotate {
        /// The shared directory.
        path: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Show every setting (every key config.toml takes, and `listen`, the address in use),
    /// or the one named.
    Get {
        /// A setting, e.g. upload_limit, mass_delete_percent, peers.
        key: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change a setting and save it in config.toml: upload_limit, download_limit,
    /// gzip_level, mass_delete_percent and min_free_space apply at once, the others at the
    /// next start (exit status 1: not in effect yet). Values are written as in the
    /// CLEARSKIES_* variables: limits are bytes per second, 0 for none, with an optional
    /// suffix k, M, G (×1000) or Ki, Mi, Gi (×1024), e.g. `config set upload_limit 1M`;
    /// lists are comma-separated.
    Set {
        /// The setting.
        key: String,
        /// Its new value.
        value: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CodeCommand {
    /// Print a random access code, registered with no daemon: nobody can join with it (for
    /// testing `code inspect` or a tracker). `clearskies share PATH` makes a code for a
    /// share. (`code new`, its old name, still works.)
    #[command(alias = "new")]
    Random {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check an access code (typos are caught by its check symbol) and show its public
    /// access ID. Accepts the `clearskies://directory/` form and any letter case.
    Inspect {
        /// The code, e.g. SYNC… or clearskies://directory/SYNC…
        code: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the codes this daemon issued: active, expired or used, and who joined with each.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a code: it is refused from now on. Name it by the code itself, its access ID
    /// (at least 8 hex digits, as `code list` shows), or --username.
    Cancel {
        /// The SYNC… code or its access ID.
        #[arg(required_unless_present = "username")]
        code: Option<String>,
        /// The username of custom credentials.
        #[arg(long, conflicts_with = "code")]
        username: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        // Clap checks names, conflicts and flags only when a subcommand is parsed; this
        // checks every one now (a duplicate `--version` once hid in `restore`).
        super::Cli::command().debug_assert();
    }
}
