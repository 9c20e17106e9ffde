//! Runs a target on files: `cargo run -p image-policy-fuzzing --example repro -- TARGET FILE...`.
#![allow(clippy::expect_used, clippy::panic)]

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().expect("a target");
    let target = image_policy_fuzzing::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .unwrap_or_else(|| panic!("no target {name}"));
    for file in args {
        let data = std::fs::read(&file).expect("read");
        target(&data);
        println!("{file}: ok");
    }
}
