//! Property tests: names and storage paths print and parse back exactly and refuse anything that
//! could escape the storage root; HL7 messages of JIS-encodable text survive encode and decode; and
//! any history the condition-flag rules produce passes the flag-history check.

use std::path::Path;

use proptest::prelude::*;
use ssmix2::condition::{Step, Transition, plan};
use ssmix2::hl7::Message;
use ssmix2::validate::flag_history;
use ssmix2::{DataType, FileName, StoragePath};

fn date() -> impl Strategy<Value = String> {
    (1900u32..=2099, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| format!("{y:04}{m:02}{d:02}"))
}

fn timestamp() -> impl Strategy<Value = String> {
    (date(), 0u32..24, 0u32..60, 0u32..60, 0u32..1000)
        .prop_map(|(d, h, mi, s, ms)| format!("{d}{h:02}{mi:02}{s:02}{ms:03}"))
}

/// The seven parts of a valid file name.
fn parts() -> impl Strategy<Value = Vec<String>> {
    (
        "[A-Za-z0-9]{1,15}",
        prop_oneof![Just("-".to_owned()), date()],
        prop::sample::select(DataType::ALL).prop_map(|d| d.code().to_owned()),
        "[A-Za-z0-9]{1,15}",
        timestamp(),
        prop_oneof![Just("-".to_owned()), "[A-Za-z0-9]{1,3}"],
        prop::sample::select(vec!["0", "1", "2"]).prop_map(str::to_owned),
    )
        .prop_map(|(a, b, c, d, e, f, g)| vec![a, b, c, d, e, f, g])
}

/// Something a hostile name might carry.
fn poison() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["..", "/", "\0", "\\", "../..", "/etc"])
}

proptest! {
    #[test]
    fn file_names_print_and_parse_back_exactly(p in parts()) {
        let s = p.join("_");
        let name = FileName::parse(&s).unwrap();
        prop_assert_eq!(name.to_string(), s);
        let path = StoragePath::of(name.clone());
        let again = StoragePath::parse(&path.to_string()).unwrap();
        prop_assert_eq!(&again.name, &name);
        prop_assert_eq!(again.to_string(), path.to_string());
        prop_assert!(path.relative().components().all(|c| matches!(c, std::path::Component::Normal(_))));
    }

    #[test]
    fn no_part_may_carry_a_path_escape(p in parts(), which in 0usize..7, bad in poison(), at in 0usize..16) {
        let mut p = p;
        let part = &mut p[which];
        let at = at.min(part.len());
        part.insert_str(at, bad);
        let s = p.join("_");
        prop_assert!(FileName::parse(&s).is_err(), "{:?} parsed", s);
    }

    #[test]
    fn no_folder_may_carry_a_path_escape(p in parts(), which in 0usize..5, bad in poison()) {
        let name = FileName::parse(&p.join("_")).unwrap();
        let mut folders = StoragePath::of(name).components();
        folders[which] = format!("{}{bad}", folders[which]);
        let rel = folders.join("/");
        prop_assert!(StoragePath::parse(&rel).is_err(), "{:?} parsed", rel);
    }
}

/// Text that ISO-2022-JP can carry: ASCII without the HL7 separators and line ends, kana, common
/// kanji and full-width forms.
fn jis_text() -> impl Strategy<Value = String> {
    let ascii = prop::char::range(' ', '~').prop_filter("separator", |c| !"|^~\\&".contains(*c));
    let hiragana = prop::char::range('ぁ', 'ん');
    let katakana = prop::char::range('ァ', 'ヶ');
    let kanji = prop::sample::select(
        "患者太郎花子医師一郎病院登呂静岡県市区内科外錠口注射検査結果血液尿".chars().collect::<Vec<_>>(),
    );
    let fullwidth =
        prop::sample::select("０１２３４５６７８９ＡＢＣａｂｃ（）　、。・ー".chars().collect::<Vec<_>>());
    prop::collection::vec(
        prop_oneof![4 => ascii, 2 => hiragana, 2 => katakana, 2 => kanji, 1 => fullwidth],
        0..12,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// A field: repetitions of components of subcomponents of JIS text.
fn field() -> impl Strategy<Value = String> {
    let sub = prop::collection::vec(jis_text(), 1..3).prop_map(|v| v.join("&"));
    let comp = prop::collection::vec(sub, 1..4).prop_map(|v| v.join("^"));
    prop::collection::vec(comp, 1..3).prop_map(|v| v.join("~"))
}

/// A whole message: an MSH and a few segments, CR-terminated, perhaps with the stray 0x1C.
fn message() -> impl Strategy<Value = String> {
    let segment = ("[A-Z][A-Z0-9]{2}", prop::collection::vec(field(), 0..8))
        .prop_filter("MSH", |(id, _)| id != "MSH")
        .prop_map(|(id, fields)| std::iter::once(id).chain(fields).collect::<Vec<_>>().join("|"));
    (prop::collection::vec(field(), 0..12), prop::collection::vec(segment, 0..6), any::<bool>()).prop_map(
        |(msh, segs, fs)| {
            let mut text = format!("MSH|^~\\&|{}\r", msh.join("|"));
            for s in segs {
                text.push_str(&s);
                text.push('\r');
            }
            if fs {
                text.push('\u{1c}');
            }
            text
        },
    )
}

proptest! {
    #[test]
    fn jis_messages_survive_encode_and_decode(text in message()) {
        let parsed = Message::parse(&text).unwrap();
        prop_assert_eq!(parsed.to_text(), text.clone());
        let bytes = parsed.encode().unwrap();
        prop_assert!(bytes.iter().all(|b| *b < 0x80), "ISO-2022-JP is 7-bit");
        let decoded = Message::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &parsed);
        prop_assert_eq!(decoded.encode().unwrap(), bytes);
    }
}

/// One event of a key's true history, in time order: a new version or a delete.
#[derive(Debug, Clone, Copy)]
enum Event {
    Write,
    Delete,
}

fn key_file(ts: u32, flag: char) -> FileName {
    format!("9999013_20111220_OMP-01_000000011000185_20111220{:09}_01_{flag}", ts * 1000).parse().unwrap()
}

proptest! {
    #[test]
    fn histories_the_flag_rules_produce_pass_the_flag_history_check(
        events in prop::collection::vec(prop_oneof![3 => Just(Event::Write), 1 => Just(Event::Delete)], 1..10),
        order in any::<u64>(),
    ) {
        // The messages, each stamped in the order they happened, arrive in a shuffled order.
        let mut incoming: Vec<FileName> = events
            .iter()
            .enumerate()
            .map(|(i, e)| key_file(i as u32 + 1, match e { Event::Write => '1', Event::Delete => '0' }))
            .collect();
        let mut seed = order;
        for i in (1..incoming.len()).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            incoming.swap(i, (seed >> 33) as usize % (i + 1));
        }
        let mut tree: Vec<FileName> = Vec::new();
        for f in &incoming {
            if let Transition::Apply(steps) = plan(&tree, f) {
                for step in steps {
                    match step {
                        Step::Rename { from, to } => {
                            let at = tree.iter().position(|x| *x == from).unwrap();
                            tree[at] = to;
                        }
                        Step::Write { name } => tree.push(name),
                    }
                }
            }
        }
        let faults = flag_history(Path::new("d"), &tree);
        prop_assert!(faults.is_empty(), "arrivals {:?} gave {:?}: {:?}", incoming, tree, faults);
    }
}
