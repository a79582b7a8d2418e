//! Connections per second each server accepts, echoes one byte on, and closes (criterion), with a
//! few cycles in flight at once.
#![forbid(unsafe_code)]

use benches::churn::Churn;
use benches::fail::OrFail;
use criterion::{SamplingMode, Throughput};

fn main() {
    let settings = benches::prepare();
    let servers = benches::servers::start_all(&settings.servers);
    let mut c = settings.criterion();
    let mut group = c.benchmark_group("accept_rate");
    group.sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(1));
    for server in &servers {
        let mut churn = Churn::new(server.addr).or_fail();
        group.bench_function(server.kind.name(), |b| b.iter_custom(|cycles| churn.run(cycles).or_fail()));
    }
    group.finish();
    c.final_summary();
}
