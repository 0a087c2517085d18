//! The calling side's hot path: attaching the cached token to a request, next to its
//! floor (inserting a pre-built `HeaderValue` of the same length), and the same attach on
//! one thread and on two at once (throughput = threads × iterations / time).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use http::header::AUTHORIZATION;

fn attach(c: &mut Criterion) {
    let (_runtime, _idp, target) = benches::attach::cached_target();
    let prebuilt = target.cached_header().unwrap();
    let mut group = c.benchmark_group("attach");
    group.bench_function("prebuilt_header_insert", |b| {
        let mut headers = HeaderMap::new();
        b.iter(|| {
            headers.insert(AUTHORIZATION, black_box(&prebuilt).clone());
            black_box(&headers);
        })
    });
    group.bench_function("cached_token", |b| {
        let mut headers = HeaderMap::new();
        b.iter(|| {
            headers.insert(AUTHORIZATION, black_box(&target).cached_header().unwrap());
            black_box(&headers);
        })
    });
    for threads in [1usize, 2] {
        group.bench_function(format!("cached_token_threads/{threads}"), |b| {
            b.iter_custom(|iters| {
                let barrier = Barrier::new(threads);
                std::thread::scope(|scope| {
                    let workers: Vec<_> = (0..threads)
                        .map(|_| {
                            let (target, barrier) = (&target, &barrier);
                            scope.spawn(move || {
                                let mut headers = HeaderMap::new();
                                barrier.wait();
                                let started = Instant::now();
                                for _ in 0..iters {
                                    headers.insert(AUTHORIZATION, target.cached_header().unwrap());
                                    black_box(&headers);
                                }
                                started.elapsed()
                            })
                        })
                        .collect();
                    // Each thread did `iters` attaches in this time: with perfect scaling the
                    // time per iteration stays that of one thread.
                    workers.into_iter().map(|w| w.join().unwrap()).max().unwrap_or(Duration::ZERO)
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, attach);
criterion_main!(benches);
