//! The `sensor-actors` binary: parse the command line, validate, run, print the summary.
//!
//! Exit codes: 0 success; 2 bad usage or bad configuration (one line naming file, field and
//! expectation); 1 a runtime failure.

mod bench;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use actix::Actor as _;
use anyhow::Context as _;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Parser, Subcommand};
use sensor_actors::config::{HttpConfig, ReadingsFormat};
use sensor_actors::live::{LiveServer, LiveView};
use sensor_actors::sinks::{Finish, MqttOutput};
use sensor_actors::{Clock, Collector, Config, RunError, Shard};
use std::error::Error as _;

/// The binary allocates through mimalloc (its v2 line: less resident memory than v3 here, same
/// speed): the read path makes a few small allocations per read, and glibc's allocator spent a
/// third of the CPU time on them (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_arena_purge_mult`, by its place in the options of its v2 header: three
/// after `mi_option_max_segment_reclaim`, which libmimalloc-sys names (a test checks the
/// defaults on both sides of it).
const ARENA_PURGE_MULT: libmimalloc_sys::mi_option_t = libmimalloc_sys::mi_option_max_segment_reclaim + 3;

/// Has mimalloc give the memory of a segment it no longer uses back to the system at once,
/// rather than 100 ms later: at a million sensors, what the start frees (among it the
/// configuration's list of a million sensors, once the run has made its table) otherwise stays
/// resident through the run, about 40 MB of the peak; the rounds measured no cost for it
/// (docs/performance.md, "Memory at a million"). Pages within a segment keep mimalloc's delay.
/// Left alone when the environment sets mimalloc's purging (`MIMALLOC_ARENA_PURGE_MULT`, or
/// `MIMALLOC_PURGE_DELAY`, of which the arena's delay is a multiple).
fn release_freed_segments_at_once() {
    let set = [
        "MIMALLOC_ARENA_PURGE_MULT",
        "MIMALLOC_PURGE_DELAY",
        "MIMALLOC_RESET_DELAY",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some());
    if !set {
        // SAFETY: sets one of mimalloc's options by its number, which any thread may do.
        unsafe { libmimalloc_sys::mi_option_set(ARENA_PURGE_MULT, 0) };
    }
}

/// Collect IoT sensor data with supervised actors.
#[derive(Debug, Parser)]
#[command(name = "sensor-actors", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector (default: 20 simulated temperature sensors until Ctrl-C).
    Run(RunArgs),
    /// Validate a configuration file: exit 0, or exit 2 with the reason.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
    /// Print the supervision tree a run of a configuration file starts.
    Tree {
        /// The TOML file.
        file: PathBuf,
        /// List every sensor of each group (by default the first 10, then how many more).
        #[arg(long)]
        all: bool,
    },
    /// Tell one sensor's story from the --out folder of a run: its readings, the rounds
    /// without one and why, its failures, restarts and anomalies, in round order.
    Story {
        /// The folder `run --out DIR` wrote.
        dir: PathBuf,
        /// The sensor id.
        sensor: String,
        /// Print the story as one JSON object (docs/supervision.md).
        #[arg(long)]
        json: bool,
    },
    /// Measure spawn time, round overhead, throughput and memory per number of sensors.
    Bench(BenchArgs),
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Sensor counts to measure, e.g. 20,1000,10k,100k,1M.
    #[arg(long, value_name = "LIST")]
    sensors: Option<String>,
    /// Zero-latency rounds of the throughput pass (at least 2).
    #[arg(long, value_name = "N", default_value_t = bench::DEFAULT_ROUNDS)]
    rounds: u64,
    /// Rounds with 100-500 ms latencies of the overhead pass.
    #[arg(long, value_name = "N", default_value_t = bench::DEFAULT_LATENCY_ROUNDS)]
    latency_rounds: u64,
    /// Also write the figures as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Measure the throughput pass of the one N given, in this process, as JSON (used internally).
    #[arg(long, hide = true)]
    child: bool,
    /// Measure the overhead pass of the one N given, in this process, as JSON (used internally).
    #[arg(long, hide = true)]
    overhead_child: bool,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// TOML configuration file (see docs/configuration.md).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Number of simulated sensors (the one `count` entry of the configuration).
    #[arg(long, value_name = "N", value_parser = parse_count::<usize>, allow_hyphen_values = true)]
    sensors: Option<usize>,
    /// Stop after N rounds.
    #[arg(long, value_name = "N", value_parser = parse_count::<u64>, allow_hyphen_values = true)]
    rounds: Option<u64>,
    /// Stop scheduling rounds after this long, e.g. 30s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    duration: Option<Duration>,
    /// Time between round starts, e.g. 1s; 0s runs rounds back to back.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    interval: Option<Duration>,
    /// Deadline of each read, e.g. 2s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    read_timeout: Option<Duration>,
    /// Seed of every random draw, for a reproducible run.
    #[arg(long, value_name = "N", value_parser = parse_count::<u64>, allow_hyphen_values = true)]
    seed: Option<u64>,
    /// Write readings.jsonl, anomalies.jsonl, events.jsonl and summary.json here.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// With --out: `jsonl` (readings.jsonl, the default) or `csv` (readings.csv: a header, then
    /// one row per reading with the same fields); overrides `[outputs.files] readings_format`.
    #[arg(long, value_name = "FORMAT", value_parser = ReadingsFormat::parse)]
    readings_format: Option<ReadingsFormat>,
    /// `wall`, or `virtual`: simulated time on one thread, as fast as the CPU allows; the same
    /// configuration and seed give byte-identical files (docs/supervision.md).
    #[arg(long, value_name = "CLOCK", default_value = "wall", value_parser = ["wall", "virtual"])]
    clock: String,
    /// Serve the live view here: Prometheus metrics at /metrics and a JSON API under /api
    /// (docs/live-view.md), e.g. 127.0.0.1:9184; overrides `[http] address`.
    #[arg(long, value_name = "ADDR", value_parser = sensor_actors::config::parse_http_address)]
    http: Option<std::net::SocketAddr>,
    /// With --http: turn on the control endpoints (restart, stop, add and remove sensors), for
    /// requests that carry the token in $SENSOR_ACTORS_HTTP_TOKEN; as `[http] control = true`.
    #[arg(long, requires = "http")]
    http_control: bool,
    /// With --clock virtual: the time of the first instant, RFC 3339 (default
    /// 2000-01-01T00:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_start)]
    start: Option<chrono::DateTime<chrono::Utc>>,
    /// Take only shard I of N of the configured sensors (1-based, by a stable hash of the id),
    /// so that N collectors with the same configuration read every sensor once, e.g. 2/4.
    #[arg(long, value_name = "I/N", value_parser = Shard::parse, allow_hyphen_values = true)]
    shard: Option<Shard>,
}

/// The control endpoints' token, from the environment: one line naming `origin` when it is
/// missing or too short.
fn control_token(origin: &str) -> anyhow::Result<String> {
    use sensor_actors::config::{HTTP_TOKEN_VARIABLE, MIN_TOKEN_LENGTH};
    match std::env::var(HTTP_TOKEN_VARIABLE) {
        Ok(token) if token.chars().count() >= MIN_TOKEN_LENGTH && !token.chars().any(char::is_whitespace) => Ok(token),
        Ok(_) => Err(anyhow::anyhow!(
            "{origin}: expected {HTTP_TOKEN_VARIABLE} to hold a token of at least {MIN_TOKEN_LENGTH} characters without spaces"
        )),
        Err(_) => Err(anyhow::anyhow!(
            "{origin}: set {HTTP_TOKEN_VARIABLE} to the token that control requests must carry (at least {MIN_TOKEN_LENGTH} characters)"
        )),
    }
}

/// `--start`: an RFC 3339 time.
fn parse_start(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.to_utc())
        .map_err(|_| format!("expected an RFC 3339 time like \"2026-01-01T00:00:00Z\", got \"{text}\""))
}

/// A whole number of a flag (`--rounds -1` names the flag, instead of reading `-1` as one).
fn parse_count<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("expected a whole number, got \"{text}\""))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|_| format!("expected a duration like \"250ms\" or \"1s\", got \"{text}\""))?;
    sensor_actors::config::check_duration(duration, text)
}

/// Failures, by exit code.
enum Failure {
    Usage(anyhow::Error),
    Runtime(anyhow::Error),
}

/// Writes `text` to standard output. A closed pipe or a full disk there is reported as an
/// error, never a panic (as `print!` would).
fn stdout(text: impl std::fmt::Display) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    write!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot write to standard output: {e}")))
}

/// Writes one line to standard error (never panics, even when standard error is closed).
fn complain(text: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "sensor-actors: {text}");
}

/// Prints the summary table, then fails with `failure` (a failed print is reported too).
fn table_then(summary: &sensor_actors::Summary, failure: Failure) -> Result<(), Failure> {
    if let Err(Failure::Runtime(e) | Failure::Usage(e)) = stdout(summary.render_table()) {
        complain(format_args!("{e:#}"));
    }
    Err(failure)
}

fn main() -> ExitCode {
    // A file size limit (RLIMIT_FSIZE) makes a write fail with EFBIG, reported like a full
    // disk, instead of killing the process before it writes its summary.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    release_freed_segments_at_once();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        Err(e) => {
            complain(usage_line(&e));
            return ExitCode::from(2);
        }
    };
    let quiet = matches!(cli.command, Command::Bench(_));
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(if quiet { "warn" } else { "info" }))
        .init();
    let outcome = match cli.command {
        Command::Check { file } => check(&file),
        Command::Tree { file, all } => Collector::new()
            .load(&file)
            .map_err(|e| Failure::Usage(e.into()))
            .and_then(|config| stdout(config.supervision_tree(if all { usize::MAX } else { 10 }))),
        Command::Story { dir, sensor, json } => story(&dir, &sensor, json),
        Command::Run(args) => run_command(args),
        Command::Bench(args) => bench_command(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            complain(format_args!("{e:#}"));
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            complain(format_args!("{e:#}"));
            ExitCode::from(1)
        }
    }
}

/// A command-line error as one line: `command line: --interval: expected a duration ...`.
fn usage_line(e: &clap::Error) -> String {
    if let (Some(ContextValue::String(arg)), Some(reason)) = (e.get(ContextKind::InvalidArg), e.source()) {
        let flag = arg.split_whitespace().next().unwrap_or(arg);
        return match e.get(ContextKind::InvalidValue) {
            Some(ContextValue::String(value)) if !reason.to_string().contains("expected") => {
                format!("command line: {flag}: expected a valid value, got \"{value}\" ({reason})")
            }
            _ => format!("command line: {flag}: {reason}"),
        };
    }
    // Clap's own message: its first paragraph, joined into one line.
    let text = e.render().to_string();
    let first: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    format!(
        "command line: {} (see --help)",
        first.join(" ").trim_start_matches("error: ")
    )
}

/// Refuses a configuration that cannot fit in this machine's memory; warns when it may swap.
fn check_memory(config: &Config, origin: &str) -> Result<(), sensor_actors::ConfigError> {
    if let Some(memory) = sensor_actors::report::MachineMemory::read() {
        if let Some(warning) = config.check_memory(origin, memory)? {
            log::warn!("{warning}");
        }
    }
    Ok(())
}

fn check(file: &std::path::Path) -> Result<(), Failure> {
    let config = Collector::new().load(file).map_err(|e| Failure::Usage(e.into()))?;
    check_memory(&config, &file.display().to_string()).map_err(|e| Failure::Usage(e.into()))?;
    let n = config.sensors.len();
    stdout(format_args!(
        "{}: ok, {n} sensor{}\n",
        file.display(),
        if n == 1 { "" } else { "s" }
    ))
}

/// Prints sensor `id`'s story from the `--out` folder `dir`, as text or one JSON line; a folder,
/// file or sensor that is not there, or a malformed line, is bad usage.
fn story(dir: &std::path::Path, id: &str, json: bool) -> Result<(), Failure> {
    let story = sensor_actors::story::Story::read(dir, id).map_err(|e| Failure::Usage(e.into()))?;
    if json {
        let text = serde_json::to_string(&story).map_err(|e| Failure::Runtime(e.into()))?;
        stdout(text + "\n")
    } else {
        stdout(story.render_text())
    }
}

/// Builds the configuration from the file (or the default scenario) and the flags, and checks
/// that it fits in memory and can run on `clock`.
fn configure(args: &RunArgs, collector: &Collector, clock: Clock) -> Result<Config, sensor_actors::ConfigError> {
    let mut config = match &args.config {
        Some(path) => collector.load(path)?,
        None => Config::default_scenario(),
    };
    if let Some(n) = args.sensors {
        config.set_sensor_count(n)?;
    }
    let c = &mut config.collection;
    c.rounds = args.rounds.or(c.rounds);
    c.duration = args.duration.or(c.duration);
    c.interval = args.interval.unwrap_or(c.interval);
    c.read_timeout = args.read_timeout.unwrap_or(c.read_timeout);
    c.seed = args.seed.or(c.seed);
    config.check_collection("command line")?;
    if let Some(shard) = args.shard {
        // Each shard's MQTT client is its own: the same id would take the other's connection.
        if let Some(mqtt) = &mut config.outputs.mqtt {
            mqtt.client_id += &shard.suffix();
        }
    }
    let origin = match (&args.config, args.sensors) {
        (Some(path), None) => path.display().to_string(),
        _ => "command line".to_string(),
    };
    check_memory(&config, &origin)?;
    config.check_clock(clock, &origin)?;
    // A broker's time cannot be simulated: on a virtual clock its timeouts would fire at once.
    if clock != Clock::Wall && config.outputs.mqtt.is_some() {
        let file = args
            .config
            .as_ref()
            .map_or("configuration".into(), |p| p.display().to_string());
        return Err(sensor_actors::ConfigError::new(
            &file,
            "outputs.mqtt",
            "expected no MQTT output with --clock virtual (a broker's time cannot be simulated)",
        ));
    }
    Ok(config)
}

fn run_command(args: RunArgs) -> Result<(), Failure> {
    let clock = match (args.clock.as_str(), args.start) {
        ("virtual", Some(start)) => Clock::Virtual { start },
        ("virtual", None) => Clock::virtual_from_default(),
        (_, Some(_)) => {
            return Err(Failure::Usage(anyhow::anyhow!(
                "command line: --start: expected --clock virtual with it"
            )))
        }
        _ => Clock::Wall,
    };
    let system = match clock {
        Clock::Wall => actix_rt::System::new(),
        // Tokio's clock paused: whenever every task waits, time jumps to the next timer.
        _ => actix_rt::System::with_tokio_rt(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .expect("a current-thread runtime can be built")
        }),
    };
    let run = async {
        // First: a signal from here on stops the run gracefully.
        let signals = Signals::install();
        let mut collector = Collector::new().log_rounds().clock(clock);
        if let Some(shard) = args.shard {
            collector = collector.shard(shard);
        }
        let config = configure(&args, &collector, clock).map_err(|e| Failure::Usage(e.into()))?;
        if let Some(dir) = args.out.as_ref().filter(|d| d.exists() && !d.is_dir()) {
            return Err(Failure::Usage(anyhow::anyhow!(
                "command line: --out: expected a directory, got the file {}",
                dir.display()
            )));
        }
        // The live view: its port is taken before anything else starts, so that a port in use
        // is one line and exit code 2 with nothing collected.
        let http = match (args.http, &config.http) {
            (Some(address), Some(http)) => {
                let mut http = http.clone();
                http.address = address;
                Some((http, "command line: --http".to_string()))
            }
            (Some(address), None) => Some((HttpConfig::new(address), "command line: --http".to_string())),
            (None, Some(http)) => {
                let file = args
                    .config
                    .as_ref()
                    .map_or("configuration".into(), |p| p.display().to_string());
                Some((http.clone(), format!("{file}: http.address")))
            }
            (None, None) => None,
        };
        let (collector, server, live) = match http {
            Some((mut http, origin)) => {
                let token = if args.http_control || http.control {
                    let origin = if args.http_control {
                        "command line: --http-control".to_string()
                    } else {
                        origin.replace("http.address", "http.control")
                    };
                    http.control = true;
                    Some(control_token(&origin).map_err(Failure::Usage)?)
                } else {
                    None
                };
                let live = LiveView::new(&config, &http).start();
                let server = match token {
                    Some(token) => {
                        LiveServer::bind_with_controls(http.address, live.clone(), collector.control(), token)
                    }
                    None => LiveServer::bind(http.address, live.clone()),
                }
                .map_err(|e| Failure::Usage(anyhow::anyhow!("{origin}: cannot listen on {}: {e}", http.address)))?;
                log::info!(
                    "live view on http://{0}/ (the dashboard), http://{0}/metrics and http://{0}/api (docs/live-view.md)",
                    server.local_addr()
                );
                (LiveView::attach(&live, collector), Some(server), Some(live))
            }
            None => (collector, None, None),
        };
        let format = args.readings_format.unwrap_or(config.outputs.files.readings_format);
        let collector = match &args.out {
            // A folder that cannot be written, or that another run writes: nothing started yet.
            Some(dir) => collector.out_as(dir, format).map_err(|e| match e {
                RunError::Setup(e) => Failure::Usage(anyhow::anyhow!("command line: --out: {e}: {}", e.source)),
                e => Failure::Runtime(anyhow::Error::new(e).context("run failed")),
            })?,
            None => collector,
        };
        // `[outputs.mqtt]`: the MQTT output, attached like any sink; asked to finish after the run.
        let (collector, mqtt) = match config.outputs.mqtt.clone() {
            Some(settings) => {
                let mut output = MqttOutput::new(settings);
                if let Some(live) = &live {
                    output = output.report_to(live.clone().recipient());
                }
                let output = output.start();
                (MqttOutput::attach(&output, collector), Some(output))
            }
            None => (collector, None),
        };
        let result = collector.run(config, signals.shutdown()).await;
        let mqtt = match mqtt {
            Some(output) => output.send(Finish).await.ok(),
            None => None,
        };
        if let Some(server) = server {
            server.stop().await;
        }
        Ok((result, mqtt))
    };
    let (result, mqtt) = system.block_on(run)?;
    if let Some(stats) = &mqtt {
        if stats.dropped() + stats.unsent() > 0 {
            log::warn!("{}", stats.render_line().trim_end());
        }
    }
    let mqtt_line = mqtt.map(|s| s.render_line()).unwrap_or_default();
    match result {
        Ok(summary) => stdout(summary.render_table() + &mqtt_line),
        // What was collected is still reported; the exit code says the files are incomplete.
        Err(RunError::Failed { reason, summary }) => table_then(
            &summary,
            Failure::Runtime(anyhow::anyhow!("the run could not go on as configured: {reason}")),
        ),
        Err(RunError::Output { source, summary }) => table_then(
            &summary,
            Failure::Runtime(anyhow::Error::new(source).context("writing the outputs failed")),
        ),
        Err(RunError::Config(e)) => Err(Failure::Usage(e.into())),
        Err(e) => Err(Failure::Runtime(anyhow::Error::new(e).context("run failed"))),
    }
}

fn bench_command(args: BenchArgs) -> Result<(), Failure> {
    let counts = match &args.sensors {
        Some(list) => bench::parse_sensor_counts(list)
            .map_err(|e| Failure::Usage(anyhow::anyhow!("command line: --sensors: {e}")))?,
        None => bench::DEFAULT_SENSOR_COUNTS.to_vec(),
    };
    if args.overhead_child {
        let [n] = counts[..] else {
            return Err(Failure::Usage(anyhow::anyhow!(
                "--overhead-child: expected one sensor count"
            )));
        };
        let pass = bench::measure_overhead(n, args.latency_rounds).map_err(|e| Failure::Runtime(anyhow::anyhow!(e)))?;
        let json = serde_json::to_string(&pass).map_err(|e| Failure::Runtime(e.into()))?;
        return stdout(json + "\n");
    }
    if args.child {
        let [n] = counts[..] else {
            return Err(Failure::Usage(anyhow::anyhow!("--child: expected one sensor count")));
        };
        let figures = bench::measure(n, args.rounds).map_err(|e| Failure::Runtime(anyhow::anyhow!(e)))?;
        let json = serde_json::to_string(&figures).map_err(|e| Failure::Runtime(e.into()))?;
        return stdout(json + "\n");
    }
    if args.rounds < 2 || args.latency_rounds == 0 {
        return Err(Failure::Usage(anyhow::anyhow!(
            "command line: --rounds: expected at least 2 (and --latency-rounds at least 1)"
        )));
    }
    let exe = std::env::current_exe()
        .context("cannot find this program's path")
        .map_err(Failure::Runtime)?;
    let mut header = false;
    let mut printed = Ok(());
    let report = bench::measure_in_children(&exe, &counts, args.rounds, args.latency_rounds, |f| {
        let table = bench::render_table(std::slice::from_ref(f));
        let mut lines = table.lines();
        let first = lines.next().unwrap_or_default();
        let mut text = String::new();
        if !std::mem::replace(&mut header, true) {
            text = format!("{first}\n");
        }
        lines.for_each(|l| text += &format!("{l}\n"));
        if printed.is_ok() {
            printed = stdout(text);
        }
    });
    printed?;
    let m = &report.machine;
    let mut text = format!(
        "machine: {} cpus, {}, {:.1} GiB\n",
        m.cpus,
        m.cpu_model,
        m.memory_bytes as f64 / f64::from(1 << 30)
    );
    for (n, why) in &report.failures {
        text += &format!("{n} sensors: not measured: {why}\n");
    }
    stdout(text)?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| Failure::Runtime(e.into()))?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(Failure::Runtime)?;
    }
    Ok(())
}

/// The signals that end a run: SIGINT (Ctrl-C), SIGTERM and SIGHUP (a daemon's terminal or
/// session going away: a graceful stop too, there is no configuration reload). They are
/// registered before anything else of the run is done, so a signal that arrives while the
/// configuration is read or the sensors start is acted on, not fatal.
struct Signals {
    #[cfg(unix)]
    streams: Vec<(tokio::signal::unix::Signal, &'static str)>,
}

impl Signals {
    /// Registers the handlers (inside the runtime).
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let kinds = [
                (SignalKind::interrupt(), "SIGINT"),
                (SignalKind::terminate(), "SIGTERM"),
                (SignalKind::hangup(), "SIGHUP"),
            ];
            let streams = kinds
                .into_iter()
                .filter_map(|(kind, name)| match signal(kind) {
                    Ok(stream) => Some((stream, name)),
                    Err(e) => {
                        log::warn!("cannot handle {name}: {e}");
                        None
                    }
                })
                .collect();
            Signals { streams }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Completes on the first signal: the run stops scheduling, settles the round in flight,
    /// flushes and writes the summary. A second signal ends the process at once with exit code
    /// 130: the line files then hold every round reported so far (each is flushed after every
    /// round), and `summary.json` is not written.
    fn shutdown(self) -> impl std::future::Future<Output = ()> {
        let (first, fired) = tokio::sync::oneshot::channel::<()>();
        #[cfg(unix)]
        {
            let mut streams = self.streams;
            actix_rt::spawn(async move {
                let Some(name) = next_signal(&mut streams).await else {
                    return;
                };
                log::warn!(
                    "{name} received: settling the round in flight, then the summary (a second signal exits at once)"
                );
                let _ = first.send(());
                if let Some(name) = next_signal(&mut streams).await {
                    complain(format_args!(
                        "{name} received again: exiting now; the files hold every round reported so far, without summary.json"
                    ));
                    // The readings' writer thread has the last rounds' lines on their way (a
                    // few milliseconds of writing).
                    sensor_actors::sinks::wait_for_written(std::time::Duration::from_secs(5));
                    std::process::exit(130);
                }
            });
        }
        #[cfg(not(unix))]
        actix_rt::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = first.send(());
            }
        });
        async move {
            if fired.await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The name of the next signal of `streams`; `None` when there is none to wait for.
#[cfg(unix)]
async fn next_signal(streams: &mut [(tokio::signal::unix::Signal, &'static str)]) -> Option<&'static str> {
    if streams.is_empty() {
        return None;
    }
    let waits = streams.iter_mut().map(|(stream, name)| {
        Box::pin(async move {
            stream.recv().await;
            *name
        })
    });
    let (name, _, _) = futures::future::select_all(waits).await;
    Some(name)
}

#[cfg(test)]
mod tests {
    /// The option's number is mimalloc's arena purge multiplier: its default is 10, between
    /// `arena_reserve` (1 GiB, in KiB) and `purge_extend_delay` (1); once the binary set it, 0.
    #[test]
    fn the_option_set_is_the_arena_purge_multiplier() {
        use super::ARENA_PURGE_MULT;
        use libmimalloc_sys::mi_option_get;
        // SAFETY: reads and sets mimalloc's options by their numbers.
        unsafe {
            assert_eq!(mi_option_get(ARENA_PURGE_MULT - 1), 1024 * 1024);
            assert_eq!(mi_option_get(ARENA_PURGE_MULT), 10);
            assert_eq!(mi_option_get(ARENA_PURGE_MULT + 1), 1);
            super::release_freed_segments_at_once();
            assert_eq!(mi_option_get(ARENA_PURGE_MULT), 0);
            assert_eq!(mi_option_get(ARENA_PURGE_MULT + 1), 1);
        }
    }
}
