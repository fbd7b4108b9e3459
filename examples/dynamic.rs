//! Devices that register themselves while the collection runs, as in Akka's IoT example: a
//! device manager takes each device's request to be tracked, in its group, and the collection
//! reads it from the next round on; a device that announces itself again is already tracked; one
//! that leaves (MQTT's last will, say) is removed.
//!
//! Run it with `cargo run --example dynamic`. The announcements are played on tokio's paused
//! clock, so the run takes milliseconds and is the same every time; the example checks the
//! journal and each round's reads against the ones written here, and fails if they drift.
//!
//! Look for: the device manager is an ordinary actor holding a `Control`, the handle a live
//! view, an HTTP handler or an MQTT driver would hold; a registration answers with the first
//! round that reads the device; a repeated registration is answered `already tracked` (the
//! collector refuses a duplicate id, the manager makes registration idempotent, as Akka's device
//! group does); a device of a group the configuration does not have is refused with one line;
//! `floor-2`, a group with no device at the start, gets its supervisor with its first device.

use std::future::pending;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use sensor_actors::streams::{Delivery, Journal, RoundSummary};
use sensor_actors::{Collector, Control, ControlError};

/// The gateway's own sensor and the groups devices may join (Akka creates device groups on
/// demand; here they are configured, each with its supervision strategy).
const CONFIG: &str = r#"
[collection]
interval = "1s"
read_timeout = "500ms"
rounds = 7
seed = 7
[[groups]]
name = "floor-1"
strategy = "one_for_one"
[[groups]]
name = "floor-2"
strategy = "one_for_all"
[[sensors]]
id = "gateway"
latency = ["10ms", "10ms"]
error_rate = 0.0
"#;

/// Asks for a device to be tracked (Akka's `RequestTrackDevice`).
#[derive(Message)]
#[rtype(result = "Result<String, String>")]
struct RequestTrackDevice {
    group: &'static str,
    device: &'static str,
}

/// A device left.
#[derive(Message)]
#[rtype(result = "Result<String, String>")]
struct DeviceLeft {
    device: &'static str,
}

/// Registers devices with the running collection.
struct DeviceManager {
    control: Control,
}

impl Actor for DeviceManager {
    type Context = Context<Self>;
}

impl Handler<RequestTrackDevice> for DeviceManager {
    type Result = ResponseFuture<Result<String, String>>;

    fn handle(&mut self, request: RequestTrackDevice, _: &mut Context<Self>) -> Self::Result {
        let control = self.control.clone();
        Box::pin(async move {
            // One [[sensors]] entry, as a configuration file would have it.
            let mut entry = toml::Table::new();
            entry.insert("id".into(), request.device.into());
            entry.insert("group".into(), request.group.into());
            entry.insert("kind".into(), "temperature".into());
            entry.insert("latency".into(), toml::Value::Array(vec!["20ms".into(), "80ms".into()]));
            entry.insert("error_rate".into(), 0.0.into());
            match control.add("discovery", entry).await {
                Ok(added) => Ok(format!("tracked from round {}", added.first_round)),
                Err(ControlError::Duplicate { .. }) => Ok("already tracked".into()),
                Err(refused) => Err(refused.to_string()),
            }
        })
    }
}

impl Handler<DeviceLeft> for DeviceManager {
    type Result = ResponseFuture<Result<String, String>>;

    fn handle(&mut self, left: DeviceLeft, _: &mut Context<Self>) -> Self::Result {
        let control = self.control.clone();
        Box::pin(async move {
            let removed = control.remove("discovery", left.device).await;
            let removed = removed.map_err(|e| e.to_string())?;
            Ok(format!("last read in round {}", removed.last_round))
        })
    }
}

/// Keeps what the run publishes: each round's reads requested, and the journal's lines.
#[derive(Default)]
struct Log {
    rounds: Vec<u64>,
    journal: Vec<String>,
}

struct Recorder(Arc<Mutex<Log>>);

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<RoundSummary> for Recorder {
    type Result = ();
    fn handle(&mut self, round: RoundSummary, _: &mut Context<Self>) {
        println!("   round {}: {} sensors read", round.round, round.reads.requested);
        self.0.lock().unwrap().rounds.push(round.reads.requested);
    }
}

impl Handler<Journal> for Recorder {
    type Result = ();
    fn handle(&mut self, journal: Journal, _: &mut Context<Self>) {
        let mut log = self.0.lock().unwrap();
        for e in journal.iter().filter(|e| e.event.as_str() != "started") {
            let cause = e.cause.as_deref().unwrap_or_default();
            println!(
                "   journal: round {} {} {} ({cause})",
                e.round,
                e.subject(),
                e.event.as_str()
            );
            log.journal
                .push(format!("{} {} {}", e.round, e.subject(), e.event.as_str()));
        }
    }
}

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    tokio::time::pause();
    let log = Arc::new(Mutex::new(Log::default()));
    let recorder = Recorder(log.clone()).start();
    let collector = Collector::new()
        .subscribe_with(recorder.clone().recipient::<RoundSummary>(), Delivery::lossless())
        .subscribe_with(recorder.recipient::<Journal>(), Delivery::lossless());
    let manager = DeviceManager {
        control: collector.control(),
    }
    .start();
    let config = collector.parse(CONFIG, "dynamic.toml")?;
    let t0 = tokio::time::Instant::now();
    // The devices' announcements, at their time since the start (rounds start every second).
    let discovery = async {
        let at = |ms| tokio::time::sleep_until(t0 + Duration::from_millis(ms));
        let track = |group, device| manager.send(RequestTrackDevice { group, device });
        let mut answers = Vec::new();
        at(500).await;
        answers.push(("floor-1/boiler joins", track("floor-1", "boiler").await?));
        at(1500).await;
        answers.push(("floor-1/radiator-1 joins", track("floor-1", "radiator-1").await?));
        answers.push(("floor-2/radiator-2 joins", track("floor-2", "radiator-2").await?));
        at(2500).await;
        answers.push(("floor-1/boiler joins again", track("floor-1", "boiler").await?));
        at(3500).await;
        let left = manager.send(DeviceLeft { device: "radiator-2" }).await?;
        answers.push(("floor-2/radiator-2 leaves", left));
        at(4500).await;
        answers.push(("basement/pump joins", track("basement", "pump").await?));
        Ok::<_, MailboxError>(answers)
    };
    let (summary, answers) = futures::join!(collector.run(config, pending()), discovery);
    let summary = summary?;
    println!("\nregistrations:");
    for (what, answer) in answers? {
        match answer {
            Ok(answer) => println!("   {what}: {answer}"),
            Err(refused) => println!("   {what}: refused: {refused}"),
        }
    }
    println!();
    print!("{}", summary.render_table());
    // What the example explains, or it fails (CI runs it).
    let log = log.lock().unwrap();
    let expected_rounds = [1, 2, 4, 4, 3, 3, 3];
    let expected_journal = [
        "1 boiler added",
        "2 radiator-1 added",
        "2 radiator-2 added",
        "4 radiator-2 removed",
    ];
    if log.rounds != expected_rounds || log.journal != expected_journal {
        anyhow::bail!(
            "the run differs from what the example explains: rounds {:?} (expected {expected_rounds:?}), journal {:?} (expected {expected_journal:?})",
            log.rounds,
            log.journal
        );
    }
    Ok(())
}
