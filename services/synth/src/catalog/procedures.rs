//! Imaging, endoscopy and physiology procedures; meals; allergens; departments.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcedureKind {
    /// OMG-01 / OMG-11.
    Radiology,
    /// OMG-02 / OMG-12.
    Endoscopy,
    /// OMG-03 / OMG-13.
    Physiology,
}

pub struct Procedure {
    pub kind: ProcedureKind,
    /// Order code (OBR-4 of the order group) and its coding system.
    pub code: &'static str,
    pub name: &'static str,
    pub system: &'static str,
    /// The performed item (child OBR-4), for radiology and endoscopy.
    pub detail: (&'static str, &'static str),
    /// DICOM modality for IPC-5.
    pub modality: &'static str,
}

pub const PROCEDURES: &[Procedure] = &[
    Procedure {
        kind: ProcedureKind::Radiology,
        code: "1000000000000000",
        name: "Ｘ線単純撮影",
        system: "JJ1017",
        detail: ("10000002000102000000010000000000", "胸部.Ｘ線単純撮影.立位正面(A→P)"),
        modality: "CR",
    },
    Procedure {
        kind: ProcedureKind::Radiology,
        code: "2000000000000000",
        name: "ＣＴ撮影",
        system: "JJ1017",
        detail: ("20000002000100000000010000000000", "胸部.ＣＴ撮影.単純"),
        modality: "CT",
    },
    Procedure {
        kind: ProcedureKind::Radiology,
        code: "3000000000000000",
        name: "ＭＲ撮影",
        system: "JJ1017",
        detail: ("30000001000100000000010000000000", "頭部.ＭＲ撮影.単純"),
        modality: "MR",
    },
    Procedure {
        kind: ProcedureKind::Endoscopy,
        code: "11000000000",
        name: "検査.上部.-.-.-.-",
        system: "LENDO",
        detail: ("11000000100", "検査.上部.-.-.上部通常内視鏡.-"),
        modality: "ES",
    },
    Procedure {
        kind: ProcedureKind::Endoscopy,
        code: "12000000000",
        name: "検査.下部.-.-.-.-",
        system: "LENDO",
        detail: ("12000000100", "検査.下部.-.-.下部通常内視鏡.-"),
        modality: "ES",
    },
    Procedure {
        kind: ProcedureKind::Physiology,
        code: "9A110",
        name: "標準１２誘導心電図",
        system: "JC10",
        detail: ("9A110", "標準１２誘導心電図"),
        modality: "ECG",
    },
];

/// A diet (ODS-3).
pub struct Meal {
    pub code: &'static str,
    pub name: &'static str,
    pub note: &'static str,
}

pub const MEALS: &[Meal] = &[
    Meal { code: "001", name: "常食", note: "" },
    Meal { code: "002", name: "全粥食", note: "" },
    Meal { code: "011", name: "エネルギー調整食１６００ｋｃａｌ", note: "糖尿病食" },
    Meal { code: "012", name: "塩分調整食６ｇ", note: "塩分控えめ" },
    Meal { code: "013", name: "たんぱく調整食４０ｇ", note: "腎臓病食" },
];

/// An allergen (IAM-3 / AL1-3) and its type (HL70127).
pub struct Allergen {
    pub kind: (&'static str, &'static str),
    pub code: &'static str,
    pub name: &'static str,
    pub system: &'static str,
    pub reaction: &'static str,
}

/// The first four are the guideline sample's.
pub const ALLERGENS: &[Allergen] = &[
    Allergen {
        kind: ("LA", "花粉アレルギー"),
        code: "5A1002216023023",
        name: "スギ",
        system: "JC10",
        reaction: "目のかゆみ",
    },
    Allergen {
        kind: ("FA", "食物アレルギー"),
        code: "5A1002411023006",
        name: "ソバ",
        system: "JC10",
        reaction: "湿疹",
    },
    Allergen {
        kind: ("EA", "環境アレルギー"),
        code: "5A1102700023023",
        name: "ハウスダスト",
        system: "JC10",
        reaction: "くしゃみ",
    },
    Allergen {
        kind: ("DA", "薬剤アレルギー"),
        code: "106824501",
        name: "アリナミン",
        system: "HOT9",
        reaction: "口渇",
    },
    Allergen {
        kind: ("DA", "薬剤アレルギー"),
        code: "620001410",
        name: "ペニシリン系抗菌薬",
        system: "HOT9",
        reaction: "蕁麻疹",
    },
    Allergen {
        kind: ("FA", "食物アレルギー"),
        code: "5A1002411023010",
        name: "卵白",
        system: "JC10",
        reaction: "腹痛",
    },
    Allergen {
        kind: ("DA", "薬剤アレルギー"),
        code: "110012101",
        name: "ロキソプロフェン",
        system: "HOT9",
        reaction: "喘息発作",
    },
];

/// Department codes (user table 0069 as the facilities here define it) and names.
pub const DEPARTMENTS: &[(&str, &str)] = &[
    ("01", "内科"),
    ("02", "循環器内科"),
    ("03", "消化器内科"),
    ("04", "呼吸器内科"),
    ("10", "外科"),
    ("12", "整形外科"),
    ("20", "小児科"),
    ("32", "皮膚科"),
    ("50", "放射線科"),
];
