//! Any string: a parsed storage path prints back exactly and never leaves the root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssmix2::StoragePath;

fuzz_target!(|s: &str| {
    if let Ok(p) = StoragePath::parse(s) {
        assert_eq!(p.to_string(), s);
        assert!(p.components().iter().all(|c| !c.contains("..") && !c.contains('/') && !c.contains('\0')));
    }
});
