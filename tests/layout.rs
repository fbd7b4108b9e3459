//! The actor layout does not change results: sensors spread over several arbiters give the same
//! per-sensor statistics and the same accounting as on one.

use std::future::pending;

use sensor_actors::{run, Config, RunOptions, Summary};

/// 300 ungrouped sensors and a group of 20, the group's entry last or (`group_first`) first.
/// Configured groups come before the shards, so with the entry last the groups' members are not
/// the sensors in configuration order and the root merges their batches into one vector each
/// round; with it first the batches go to the aggregator as they are.
async fn run_on(arbiters: usize, group_first: bool) -> Summary {
    let shard = "[[sensors]]\ncount = 300\nlatency = [\"0ms\", \"0ms\"]\nerror_rate = 0.1\n";
    let group = "[[sensors]]\nname = \"bus\"\ncount = 20\ngroup = \"bus-a\"\nlatency = [\"0ms\", \"0ms\"]\n";
    let sensors = if group_first {
        format!("{group}{shard}")
    } else {
        format!("{shard}{group}")
    };
    let toml = format!(
        r#"
[collection]
interval = "0s"
read_timeout = "5s"
rounds = 40
seed = 77
[runtime]
arbiters = {arbiters}
{sensors}
[[groups]]
name = "bus-a"
"#
    );
    let config = Config::from_toml_str(&toml, "layout.toml").unwrap();
    run(config, RunOptions::default(), pending()).await.unwrap()
}

/// The same seeded run (zero-latency reads in real time, since other arbiters run their own
/// clocks) on 1, 2 and 3 arbiters: identical per-sensor count, min, max, mean and standard
/// deviation, and identical read accounting.
#[actix_rt::test]
async fn same_statistics_on_one_and_several_arbiters() {
    for group_first in [false, true] {
        let one = run_on(1, group_first).await;
        assert_eq!(one.reads.requested, 40 * 320);
        assert!(one.reads.failed > 0 && one.reads.timed_out == 0);
        // Outcome vectors are reused from round to round: an outcome left over from an earlier
        // round would count a sensor more than once a round, or count readings nobody made.
        assert!(
            one.sensors.iter().all(|s| s.count <= 40 && s.count >= 20),
            "{:?}",
            one.sensors
        );
        assert_eq!(one.reads.ok, one.sensors.iter().map(|s| s.count).sum::<u64>());
        for arbiters in [2, 3] {
            let many = run_on(arbiters, group_first).await;
            assert_eq!(many.reads, one.reads, "{arbiters} arbiters, group first: {group_first}");
            assert_eq!(
                many.sensors, one.sensors,
                "{arbiters} arbiters, group first: {group_first}"
            );
        }
    }
}
