//! Generates a corpus and prints the summary with the elapsed time, for sizing and timing:
//! `cargo run --release -p synth --example gen -- OUT [SEED] [FACILITIES] [PATIENTS] [DAYS] [BAD] [PHARMACIES]`
//! (`kizuna ssmix2 gen` is the real command; this example exists to measure the library alone).

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first() else {
        eprintln!("usage: gen OUT [SEED] [FACILITIES] [PATIENTS] [DAYS] [BAD] [PHARMACIES]");
        std::process::exit(2);
    };
    let num = |i: usize, d: u64| args.get(i).map_or(d, |s| s.parse().expect("a number"));
    let from = synth::CivilDate::constant(2024, 1, 1);
    let days = num(4, 365) as i64;
    let to = from.checked_add(jiff::Span::new().days(days - 1)).expect("a date");
    let cfg = synth::GenConfig {
        seed: num(1, 1),
        facilities: num(2, 10) as u32,
        patients: num(3, 1000) as u32,
        from,
        to,
        bad: num(5, 0) as u32,
        pharmacies: num(6, 0) as u32,
        sync: std::env::var_os("SYNTH_NO_SYNC").is_none(),
    };
    let t = Instant::now();
    match synth::generate(&cfg, std::path::Path::new(out), &|_| {}) {
        Ok(s) => {
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{} files ({} bytes) for {} persons / {} registrations in {secs:.2} s = {:.0} files/s; flags {:?}",
                s.files,
                s.bytes,
                s.persons,
                s.registrations,
                s.files as f64 / secs,
                s.by_flag
            );
            println!("{:?}", s.by_data_type);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
