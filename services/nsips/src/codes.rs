//! The code tables the converter maps NSIPS values through: dose units to MERIT-9 (`MR9P`), JAMI
//! usage codes to HL7 routes (table 0162). Both are written out here, not computed, so what a
//! pharmacy's value becomes can be read off (and is tested in `tests/codes.rs`).

use unicode_normalization::UnicodeNormalization;

/// The MERIT-9 unit coding system (医薬品単位略号), as SS-MIX2 prescriptions name it.
pub const MERIT9: &str = "MR9P";

/// HL7 v2 local coding system (`99zzz`) for a unit MERIT-9 has no code for (`噴霧`, `パフ`, …):
/// the code is the unit as the pharmacy wrote it, so a reader of component 1 still gets the unit.
pub const LOCAL_UNITS: &str = "99NSU";

/// HL7 v2 local coding system for a drug identified by its receipt-computer (レセ電) code, when
/// it has neither HOT nor YJ code (RXE-2).
pub const LOCAL_RECEIPT_CODES: &str = "99NSR";

/// MERIT-9 unit codes and the NFKC forms of the names a pharmacy may write for them: MERIT-9's
/// own name (JP Core `JP_MedicationUnitMERIT9_CS`, full-width letters become ASCII under NFKC)
/// plus common spellings (`ml`, `グラム`, `mcg`).
pub const MERIT9_UNITS: &[(&str, &[&str])] = &[
    ("PART", &["分"]),
    ("TIME", &["回"]),
    ("KIND", &["種"]),
    ("BOX", &["箱"]),
    ("ROLL", &["巻"]),
    ("SHT", &["枚"]),
    ("HON", &["本"]),
    ("PARI", &["組"]),
    ("SET", &["セット"]),
    ("KO", &["個"]),
    ("TEAR", &["裂"]),
    ("DIR", &["方向"]),
    ("TROC", &["トローチ"]),
    ("AMP", &["アンプル"]),
    ("CAP", &["カプセル"]),
    ("TAB", &["錠"]),
    ("PILL", &["丸"]),
    ("PCK", &["包"]),
    ("BTL", &["瓶"]),
    ("BAG", &["袋"]),
    ("BTLB", &["瓶(袋)"]),
    ("TUBE", &["管"]),
    ("SYRG", &["シリンジ"]),
    ("DOSE", &["回分"]),
    ("TEST", &["テスト分"]),
    ("GCYL", &["ガラス筒"]),
    ("RODT", &["桿錠"]),
    ("UNT", &["単位"]),
    ("TTUN", &["万単位"]),
    ("FEET", &["フィート"]),
    ("DROP", &["滴"]),
    ("MG", &["mg", "ミリグラム"]),
    ("G", &["g", "グラム"]),
    ("KG", &["kg"]),
    ("CC", &["cc"]),
    ("ML", &["mL", "ml", "ML", "ミリリットル"]),
    ("L", &["L", "l", "リットル"]),
    ("MLV", &["mLV"]),
    ("VIL", &["バイアル"]),
    ("CM", &["cm"]),
    ("CM2", &["cm2"]),
    ("M", &["m"]),
    ("MCCI", &["μCi"]),
    ("MCI", &["mCi"]),
    ("MCG", &["μg", "mcg", "マイクログラム"]),
    ("BKR", &["管(瓶)"]),
    ("PIPE", &["筒"]),
    ("GBQ", &["GBq"]),
    ("MGBQ", &["MBq"]),
    ("KBQ", &["KBq", "kBq"]),
    ("KIT", &["キット"]),
    ("IUNT", &["国際単位"]),
    ("PAT", &["患者当り"]),
    ("ATM", &["気圧"]),
    ("CAN", &["缶"]),
    ("OPE", &["手術当り"]),
    ("VSL", &["容器"]),
    ("MLG", &["mL(g)"]),
    ("BLST", &["ブリスター"]),
    ("SHET", &["シート"]),
    ("TUNT", &["千単位"]),
    ("TTIU", &["万国際単位"]),
    ("MEQ", &["mEq"]),
    ("MCL", &["μL"]),
];

/// How a unit is coded: its identifier and coding system (the text is the unit as written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitCode {
    /// A MERIT-9 code.
    Merit9(&'static str),
    /// No MERIT-9 code: the unit as written is its own code under [`LOCAL_UNITS`].
    Local,
    /// No unit written.
    Missing,
}

/// The code of the unit `name` as written. Matching is on the NFKC form, so full-width `ｍｇ`,
/// the micro sign `µ` and `ｃｍ２` match MERIT-9's names too.
pub fn unit_code(name: &str) -> UnitCode {
    let key: String = name.trim().nfkc().collect();
    if key.is_empty() {
        return UnitCode::Missing;
    }
    MERIT9_UNITS
        .iter()
        .find(|(_, names)| names.contains(&key.as_str()))
        .map_or(UnitCode::Local, |(code, _)| UnitCode::Merit9(code))
}

/// HL7 table 0162 route (code, Japanese name) of each JAMI usage-code prefix: the basic usage
/// class (1 内服, 2 外用, 3 注射, 4 注入; JAMI 標準用法規格 表1) and the detail class (表2, as JP
/// Core's `JP_MedicationMethodJAMIDetailUsage_CS` lists it). Detail classes with no single route
/// are absent on purpose (2E 噴霧: skin, nose or mouth; 2U 膀胱注入; 30 注射 unspecified; the
/// rarer injections and instillations): their drugs get no route code and a warning.
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("10", "PO", "口"),       // 経口
    ("11", "SL", "舌下"),     // 舌下
    ("12", "B", "頬"),        // バッカル
    ("13", "MTH", "口腔"),    // 口腔内塗布
    ("2A", "TD", "経皮"),     // 貼付
    ("2B", "TP", "皮膚"),     // 塗布
    ("2C", "TP", "皮膚"),     // 湿布
    ("2D", "TP", "皮膚"),     // 撒布
    ("2F", "TP", "皮膚"),     // 消毒
    ("2G", "OT", "耳"),       // 点耳
    ("2H", "OP", "眼"),       // 点眼
    ("2J", "NS", "鼻"),       // 点鼻
    ("2K", "MTH", "口腔"),    // うがい
    ("2L", "IH", "吸入"),     // 吸入
    ("2M", "MTH", "口腔"),    // トローチ
    ("2N", "GU", "膀胱洗浄"), // 膀胱洗浄
    ("2P", "NS", "鼻"),       // 鼻腔内洗浄
    // 浣腸: JP Core prints "2O" (between 2P and 2R); JAMI skips I and O elsewhere, so 2Q is read too.
    ("2Q", "PR", "直腸"),
    ("2O", "PR", "直腸"),
    ("2R", "PR", "直腸"),   // 肛門挿入
    ("2S", "PR", "直腸"),   // 肛門注入
    ("2T", "VG", "膣"),     // 膣内挿入
    ("31", "IV", "静脈内"), // 中心静脈注射
    ("32", "SC", "皮下"),   // 皮下注射 (insulin and other pens)
    ("33", "IM", "筋肉内"), // 筋肉内注射
    ("34", "ID", "皮内"),   // 皮内注射
    ("35", "IA", "動脈内"), // 動脈注射
    ("3A", "EP", "硬膜外"), // 硬膜外注射
    ("3B", "IT", "髄腔内"), // 脳脊髄腔注射
    ("3G", "IO", "眼内"),   // 硝子体内注射
    ("3R", "IP", "腹腔内"), // 腹腔内注射
    ("40", "IP", "腹腔内"), // 腹膜透析
    ("45", "IP", "腹腔内"), // 腹腔内注入
];

/// The HL7 route (code, name) of a JAMI usage code, or `None` when its first two characters have
/// no single route.
pub fn route(usage_code: &str) -> Option<(&'static str, &'static str)> {
    let prefix = usage_code.get(..2)?;
    ROUTES.iter().find(|(p, _, _)| *p == prefix).map(|(_, code, name)| (*code, *name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_name_is_its_own_nfkc_form_and_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for (code, names) in MERIT9_UNITS {
            for n in *names {
                assert_eq!(n.nfkc().collect::<String>(), *n, "{code}: {n} would never match");
                assert!(seen.insert(*n), "{n} listed twice");
            }
        }
    }

    #[test]
    fn units_match_in_any_width() {
        assert_eq!(unit_code("ｍｇ"), UnitCode::Merit9("MG"));
        assert_eq!(unit_code("µg"), UnitCode::Merit9("MCG"));
        assert_eq!(unit_code("ｃｍ２"), UnitCode::Merit9("CM2"));
        assert_eq!(unit_code("瓶（袋）"), UnitCode::Merit9("BTLB"));
        assert_eq!(unit_code(" 錠 "), UnitCode::Merit9("TAB"));
        assert_eq!(unit_code("噴霧"), UnitCode::Local);
        assert_eq!(unit_code(""), UnitCode::Missing);
    }

    #[test]
    fn routes_are_listed_once_and_need_two_characters() {
        let mut seen = std::collections::BTreeSet::new();
        assert!(ROUTES.iter().all(|(p, _, _)| seen.insert(*p) && p.len() == 2));
        assert_eq!(route("2H50B10000000000"), Some(("OP", "眼")));
        assert_eq!(route("2E00000000000000"), None);
        assert_eq!(route("3"), None);
        assert_eq!(route(""), None);
    }
}
