//! Oral and external drugs, and injections.

/// How often and when a drug is taken, as a JAMI 16-digit usage code (JAMISDP01).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    ThreeTimesAfterMeals,
    TwiceAfterMeals,
    OnceAfterBreakfast,
    OnceAtBedtime,
    External,
}

impl Usage {
    /// Code and text. The first two are the guideline samples' own codes.
    pub fn code(self) -> (&'static str, &'static str) {
        match self {
            Self::ThreeTimesAfterMeals => ("1013044400000000", "内服・経口・１日３回朝昼夕食後"),
            Self::TwiceAfterMeals => ("1012040400000000", "内服・経口・１日２回朝夕食後"),
            Self::OnceAfterBreakfast => ("1011040000000000", "内服・経口・１日１回朝食後"),
            Self::OnceAtBedtime => ("1011000000001000", "内服・経口・１日１回就寝前"),
            Self::External => ("2B74000000000000", "外用・貼付・１日１回"),
        }
    }

    pub fn times_per_day(self) -> u32 {
        match self {
            Self::ThreeTimesAfterMeals => 3,
            Self::TwiceAfterMeals => 2,
            _ => 1,
        }
    }
}

/// A drug as a prescription names it.
pub struct Drug {
    pub name: &'static str,
    pub yj: &'static str,
    pub hot9: &'static str,
    /// Unit code and name (MR9P): TAB 錠, CAP カプセル, G グラム, MAI 枚.
    pub unit: (&'static str, &'static str),
    /// Amount per dose.
    pub per_dose: u32,
    pub usage: Usage,
    /// Route (HL70162): PO 口, TP 皮膚.
    pub route: (&'static str, &'static str),
}

macro_rules! drugs {
    ($($n:literal $yj:literal $hot:literal $u:ident $d:literal $us:ident $r:ident),+ $(,)?) => {
        &[$(Drug { name: $n, yj: $yj, hot9: $hot, unit: unit!($u), per_dose: $d, usage: Usage::$us, route: route!($r) }),+]
    };
}
macro_rules! unit {
    (TAB) => {
        ("TAB", "錠")
    };
    (CAP) => {
        ("CAP", "カプセル")
    };
    (G) => {
        ("G", "グラム")
    };
    (MAI) => {
        ("MAI", "枚")
    };
}
macro_rules! route {
    (PO) => {
        ("PO", "口")
    };
    (TP) => {
        ("TP", "皮膚")
    };
}

/// Index constants are used by [`super::CONDITIONS`]; keep the order.
pub const DRUGS: &[Drug] = drugs![
    "アムロジピン錠５ｍｇ" "2171022F2020" "116523801" TAB 1 OnceAfterBreakfast PO, // 0
    "オルメサルタン錠２０ｍｇ" "2149044F2021" "117542001" TAB 1 OnceAfterBreakfast PO, // 1
    "カンデサルタン錠８ｍｇ" "2149040F2025" "112585802" TAB 1 OnceAfterBreakfast PO, // 2
    "メトホルミン塩酸塩錠２５０ｍｇ" "3962002F1032" "119653401" TAB 2 TwiceAfterMeals PO, // 3
    "ジャヌビア錠５０ｍｇ" "3969010F2022" "118634101" TAB 1 OnceAfterBreakfast PO, // 4
    "グリメピリド錠１ｍｇ" "3961008F1037" "114580902" TAB 1 OnceAfterBreakfast PO, // 5
    "アトルバスタチン錠１０ｍｇ" "2189015F2029" "113450101" TAB 1 OnceAfterBreakfast PO, // 6
    "ロスバスタチン錠２．５ｍｇ" "2189017F1028" "116143601" TAB 1 OnceAfterBreakfast PO, // 7
    "レバミピド錠１００ｍｇ" "2329021F1021" "110596301" TAB 1 ThreeTimesAfterMeals PO, // 8
    "ファモチジン錠２０ｍｇ" "2325003F2020" "110548802" TAB 1 TwiceAfterMeals PO, // 9
    "ランソプラゾールＯＤ錠１５ｍｇ" "2329023F2020" "113480101" TAB 1 OnceAfterBreakfast PO, // 10
    "タケキャブ錠２０ｍｇ" "2329030F2021" "123421701" TAB 1 OnceAfterBreakfast PO, // 11
    "モンテルカスト錠１０ｍｇ" "4490026F1023" "114553301" TAB 1 OnceAtBedtime PO, // 12
    "アレンドロン酸錠３５ｍｇ" "3999018F2025" "115972101" TAB 1 OnceAfterBreakfast PO, // 13
    "エディロールカプセル０．７５μｇ" "3112006M1020" "120838401" CAP 1 OnceAfterBreakfast PO, // 14
    "フロセミド錠２０ｍｇ" "2139005F1042" "100683002" TAB 1 OnceAfterBreakfast PO, // 15
    "カルベジロール錠１０ｍｇ" "2149032F2020" "111623902" TAB 1 TwiceAfterMeals PO, // 16
    "エリキュース錠５ｍｇ" "3339003F2028" "121573101" TAB 1 TwiceAfterMeals PO, // 17
    "ビソプロロールフマル酸塩錠２．５ｍｇ" "2123016F2023" "114830401" TAB 1 OnceAfterBreakfast PO, // 18
    "ロキソプロフェンＮａ錠６０ｍｇ" "1149019F1560" "103835201" TAB 1 ThreeTimesAfterMeals PO, // 19
    "セレコックス錠１００ｍｇ" "1149037F1020" "118562301" TAB 1 TwiceAfterMeals PO, // 20
    "ゾルピデム酒石酸塩錠５ｍｇ" "1129009F1025" "119826401" TAB 1 OnceAtBedtime PO, // 21
    "フェブリク錠２０ｍｇ" "3949003F2020" "120605201" TAB 1 OnceAfterBreakfast PO, // 22
    "アロプリノール錠１００ｍｇ" "3943001F1128" "105231801" TAB 1 TwiceAfterMeals PO, // 23
    "酸化マグネシウム錠３３０ｍｇ" "2344009F2024" "113093501" TAB 2 ThreeTimesAfterMeals PO, // 24
    "フェキソフェナジン塩酸塩錠６０ｍｇ" "4490023F1027" "116553701" TAB 1 TwiceAfterMeals PO, // 25
    "アセトアミノフェン錠２００ｍｇ" "1141007F1063" "110012101" TAB 2 ThreeTimesAfterMeals PO, // 26
    "カルボシステイン錠５００ｍｇ" "2233002F2030" "103624402" TAB 1 ThreeTimesAfterMeals PO, // 27
    "クラリスロマイシン錠２００ｍｇ" "6149003F2038" "104581102" TAB 1 TwiceAfterMeals PO, // 28
    "タミフルカプセル７５" "6250021M1027" "113374701" CAP 1 TwiceAfterMeals PO, // 29
    "ビオフェルミン錠剤" "2316004F1036" "100413801" TAB 3 ThreeTimesAfterMeals PO, // 30
    "レボフロキサシン錠５００ｍｇ" "6241013F3020" "117070001" TAB 1 OnceAfterBreakfast PO, // 31
    "バラシクロビル錠５００ｍｇ" "6250019F1020" "112583101" TAB 2 ThreeTimesAfterMeals PO, // 32
    "モーラステープＬ４０ｍｇ" "2649735S2039" "109873103" MAI 1 External TP, // 33
    "ダーゼン錠５ｍｇ" "3959002F1068" "108665201" TAB 1 ThreeTimesAfterMeals PO, // 34 (sample HOT)
];

/// An injection as an order names it (HOT9 codes of the first two are the samples').
pub struct Injection {
    pub name: &'static str,
    pub hot9: &'static str,
    pub unit: (&'static str, &'static str),
    /// Volume in mL of one unit, for RXE-3.
    pub ml: u32,
}

pub const INJECTIONS: &[Injection] = &[
    Injection {
        name: "ソリタ−Ｔ３号輸液５００ｍＬ", hot9: "620007329", unit: ("HON", "本"), ml: 500
    },
    Injection {
        name: "アドナ注（静脈用）５０ｍｇ", hot9: "620002559", unit: ("AMP", "アンプル"), ml: 10
    },
    Injection { name: "生理食塩液１００ｍＬ", hot9: "620007401", unit: ("HON", "本"), ml: 100 },
    Injection {
        name: "セフトリアキソンＮａ静注用１ｇ", hot9: "620005812", unit: ("V", "バイアル"), ml: 0
    },
    Injection { name: "ラクテック注５００ｍＬ", hot9: "620007012", unit: ("HON", "本"), ml: 500 },
    Injection {
        name: "ファモチジン注射液２０ｍｇ", hot9: "620004401", unit: ("AMP", "アンプル"), ml: 2
    },
];
