//! Conditions: a diagnosis with what follows from it — drugs, lab tests that move, department,
//! procedures, and whether it brings the patient into hospital.

pub struct Condition {
    pub name: &'static str,
    /// ICD-10 as SS-MIX2 writes it (no dot).
    pub icd10: &'static str,
    /// MEDIS standard disease number (8 digits) and exchange code (4 characters).
    pub medis: &'static str,
    pub exchange: &'static str,
    pub chronic: bool,
    /// Department code (see [`super::DEPARTMENTS`]).
    pub dept: &'static str,
    /// Indexes into [`super::DRUGS`]; a visit prescribes one to all of them.
    pub drugs: &'static [usize],
    /// Lab tests shifted by the condition: (index into [`super::LAB_TESTS`], shift in SDs).
    pub labs: &'static [(usize, f64)],
    /// Indexes into [`super::PROCEDURES`] that may be ordered for it.
    pub procedures: &'static [usize],
    /// Relative frequency, and probability per year of an admission caused by it.
    pub weight: u32,
    pub admission_rate: f64,
}

macro_rules! conditions {
    ($($n:literal $icd:literal $m:literal $x:literal $ch:literal $dept:literal [$($d:literal),*] [$(($l:literal, $s:literal)),*] [$($p:literal),*] $w:literal $a:literal),+ $(,)?) => {
        &[$(Condition { name: $n, icd10: $icd, medis: $m, exchange: $x, chronic: $ch, dept: $dept,
            drugs: &[$($d),*], labs: &[$(($l, $s)),*], procedures: &[$($p),*], weight: $w, admission_rate: $a }),+]
    };
}

pub const CONDITIONS: &[Condition] = conditions![
    "本態性高血圧症" "I10" "20057430" "8833" true "02" [0, 1, 2] [] [5] 30 0.01,
    "２型糖尿病" "E119" "20062163" "HB29" true "01" [3, 4, 5] [(14, 4.0), (15, 5.0)] [] 20 0.02,
    "脂質異常症" "E785" "20089313" "GJN3" true "01" [6, 7] [(10, 1.8), (13, 2.0), (11, 1.5)] [] 22 0.0,
    "慢性胃炎" "K297" "20054174" "TSQF" true "03" [8, 9] [] [3] 10 0.0,
    "逆流性食道炎" "K210" "20063872" "JC4E" true "03" [10, 11] [] [3] 8 0.0,
    "気管支喘息" "J459" "20056120" "UPLD" true "04" [12] [(20, 0.8)] [0] 6 0.03,
    "骨粗鬆症" "M8199" "20062522" "CBK8" true "12" [13, 14] [] [0] 8 0.0,
    "慢性心不全" "I509" "20068473" "RJM4" true "02" [15, 16] [(7, 1.5), (8, 1.2)] [0, 5] 5 0.15,
    "心房細動" "I489" "20061930" "N7E2" true "02" [17, 18] [] [5] 5 0.05,
    "変形性膝関節症" "M171" "20061655" "E7M0" true "12" [19, 8, 33] [] [0] 9 0.02,
    "不眠症" "G470" "20060637" "RR1N" true "01" [21] [] [] 6 0.0,
    "高尿酸血症" "E790" "20061215" "F3C9" true "01" [22, 23] [(9, 2.5)] [] 7 0.0,
    "慢性腎臓病" "N189" "20082010" "BAKS" true "01" [] [(7, 3.0), (8, 4.0), (17, 1.5)] [] 4 0.05,
    "便秘症" "K590" "20062906" "TGA5" true "01" [24] [] [] 6 0.0,
    "アレルギー性鼻炎" "J304" "20055820" "SHN6" true "01" [25] [] [] 7 0.0,
    "急性上気道炎" "J069" "20056104" "Q3KN" false "01" [26, 27] [(19, 2.0)] [] 25 0.0,
    "急性気管支炎" "J209" "20056115" "L5L0" false "04" [28, 27] [(19, 6.0), (20, 1.5)] [0] 10 0.01,
    "インフルエンザ" "J111" "20053640" "E8SE" false "01" [29, 26] [(19, 4.0)] [] 8 0.01,
    "急性胃腸炎" "K529" "20054306" "UB8M" false "01" [30] [] [] 8 0.02,
    "膀胱炎" "N300" "20058052" "EGS7" false "01" [31] [(20, 1.5)] [] 5 0.0,
    "帯状疱疹" "B029" "20053524" "S1FM" false "32" [32] [] [] 3 0.02,
    "肺炎" "J189" "20056253" "ML8S" false "04" [28] [(19, 30.0), (20, 4.0)] [0, 1] 4 0.6,
    "大腿骨頚部骨折" "S7200" "20067283" "KQ2B" false "12" [19] [] [0, 1] 2 0.9,
    "脳梗塞" "I639" "20059425" "GPMS" false "01" [] [(14, 1.0)] [1, 2] 2 0.9,
    "腰痛症" "M5456" "20076271" "L1QS" false "12" [19, 33] [] [0] 10 0.0,
];
