//! The actor layout does not change results: sensors spread over several arbiters give the same
//! per-sensor statistics and the same accounting as on one.

use std::future::pending;

use sensor_actors::{run, Config, RunOptions, Summary};

async fn run_on(arbiters: usize) -> Summary {
    let toml = format!(
        r#"
[collection]
interval = "0s"
read_timeout = "5s"
rounds = 40
seed = 77
[runtime]
arbiters = {arbiters}
[[sensors]]
count = 300
latency = ["0ms", "0ms"]
error_rate = 0.1
[[sensors]]
name = "bus"
count = 20
group = "bus-a"
latency = ["0ms", "0ms"]
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
    let one = run_on(1).await;
    assert_eq!(one.reads.requested, 40 * 320);
    assert!(one.reads.failed > 0 && one.reads.timed_out == 0);
    for arbiters in [2, 3] {
        let many = run_on(arbiters).await;
        assert_eq!(many.reads, one.reads, "{arbiters} arbiters");
        assert_eq!(many.sensors, one.sensors, "{arbiters} arbiters");
    }
}
