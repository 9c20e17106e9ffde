//! The admission hot path of the policy engine: parse an image, find its matched entries.
#![allow(missing_docs, clippy::panic)] // criterion_group! makes undocumented items; a broken fixture should stop the bench.
//!
//! `cargo bench -p image-policy --bench snapshot_match` prints, for snapshots of 10, 100 and
//! 1,000 patterns, the time to answer one image. The patterns mimic a large organisation:
//! many registries and projects, some leading wildcards that no index can skip.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use image_policy::policy::{ImageName, Snapshot};
use image_policy_crd::{ClusterImagePolicySpec, ImageEntry, Key, KeyRef, Verification};

const KEY: &str = include_str!("../tests/data/keys/p256.pub");

fn patterns(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 10 {
            // One in ten starts with a wildcard and is checked for every image.
            0 => format!("*.team{i}.example.org/*"),
            1 => format!("registry{}.example.org/project{i}/app:v*", i % 50),
            2 => format!("docker.io/org{i}/*"),
            3 => format!("ghcr.io/org{i}/*/service-{i}"),
            _ => format!("registry{}.example.org/project{i}/*", i % 50),
        })
        .collect()
}

fn snapshot(n: usize) -> Snapshot {
    let images = patterns(n)
        .into_iter()
        .map(|p| ImageEntry {
            name_pattern: p,
            keys: vec![KeyRef { name: "k".into() }],
            secret_ref: None,
            mode: None,
            attestations: Vec::new(),
        })
        .collect();
    let keys = vec![Key {
        name: "k".into(),
        public_key: Some(KEY.into()),
        ..Key::default()
    }];
    let spec = ClusterImagePolicySpec {
        verification: Verification {
            exclude: None,
            keys,
            images,
            ..Verification::default()
        },
    };
    match Snapshot::compile_spec(&spec) {
        Ok(s) => s,
        Err(problems) => panic!("benchmark policy does not compile: {problems}"),
    }
}

fn bench_matching(c: &mut Criterion) {
    let images = [
        ("hit", "registry7.example.org/project57/app:v1.2.3"),
        ("miss", "quay.io/someone/tool:1.0"),
        ("docker-hub", "busybox"),
        (
            "digest",
            "registry3.example.org/project3/app@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        ),
    ];
    let mut group = c.benchmark_group("match");
    for n in [10, 100, 1000] {
        let snapshot = snapshot(n);
        for (label, written) in images {
            group.bench_with_input(BenchmarkId::new(label, n), &written, |b, written| {
                b.iter(|| {
                    let image = ImageName::parse(black_box(written));
                    image.map(|i| snapshot.matching(&i).len()).unwrap_or(0)
                });
            });
        }
    }
    group.finish();
    // The same work without the index, for the ratio that shows what the index buys.
    let snapshot = snapshot(1000);
    let image = ImageName::parse("quay.io/someone/tool:1.0").ok();
    c.bench_function("scan-all/1000/miss", |b| {
        b.iter(|| {
            let image = black_box(image.as_ref());
            snapshot
                .entries()
                .iter()
                .filter(|e| image.is_some_and(|i| e.pattern.matches(i)))
                .count()
        });
    });
}

fn bench_compile(c: &mut Criterion) {
    let keys = vec![Key {
        name: "k".into(),
        public_key: Some(KEY.into()),
        ..Key::default()
    }];
    let images: Vec<ImageEntry> = patterns(1000)
        .into_iter()
        .map(|p| ImageEntry {
            name_pattern: p,
            keys: vec![KeyRef { name: "k".into() }],
            secret_ref: None,
            mode: None,
            attestations: Vec::new(),
        })
        .collect();
    let spec = ClusterImagePolicySpec {
        verification: Verification {
            exclude: None,
            keys,
            images,
            ..Verification::default()
        },
    };
    c.bench_function("compile/1000", |b| {
        b.iter(|| Snapshot::compile_spec(black_box(&spec)).is_ok())
    });
}

criterion_group!(benches, bench_matching, bench_compile);
criterion_main!(benches);
