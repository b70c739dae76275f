//! Specimen tests with JLAC10 codes (17 characters: analyte 5, identification 4, specimen 3, method 3,
//! result 2). The first six are the guideline samples' own codes.

/// The order group a test belongs to (OBR-4 of the order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabGroup {
    Hematology,
    Chemistry,
}

impl LabGroup {
    pub fn code(self) -> (&'static str, &'static str) {
        match self {
            Self::Hematology => ("E001", "血液学的検査"),
            Self::Chemistry => ("E002", "生化学的検査"),
        }
    }

    /// Specimen (SPM-4): JLAC10 material code and name.
    pub fn specimen(self) -> (&'static str, &'static str) {
        match self {
            Self::Hematology => ("019", "全血"),
            Self::Chemistry => ("023", "血清"),
        }
    }
}

pub struct LabTest {
    pub jlac10: &'static str,
    pub name: &'static str,
    /// Local code the facility's lab system uses (second triplet of OBX-3).
    pub local: &'static str,
    pub unit: &'static str,
    pub low: f64,
    pub high: f64,
    /// Healthy mean and spread of the generator's values.
    pub mean: f64,
    pub sd: f64,
    pub decimals: usize,
    pub group: LabGroup,
}

macro_rules! labs {
    ($($c:literal $n:literal $l:literal $u:literal $lo:literal $hi:literal $m:literal $sd:literal $d:literal $g:ident),+ $(,)?) => {
        &[$(LabTest { jlac10: $c, name: $n, local: $l, unit: $u, low: $lo, high: $hi, mean: $m, sd: $sd, decimals: $d, group: LabGroup::$g }),+]
    };
}

pub const LAB_TESTS: &[LabTest] = labs![
    "3A010000002327101" "総蛋白" "10222" "g/dL" 6.6 8.1 7.2 0.4 1 Chemistry, // 0
    "3A015000002327101" "アルブミン" "10224" "g/dL" 4.1 5.1 4.4 0.35 1 Chemistry, // 1
    "3J010000002327101" "総ビリルビン" "10213" "mg/dL" 0.4 1.5 0.8 0.3 1 Chemistry, // 2
    "3B035000002327201" "AST" "10207" "U/L" 13.0 30.0 22.0 7.0 0 Chemistry, // 3
    "3B045000002327201" "ALT" "10208" "U/L" 10.0 42.0 20.0 9.0 0 Chemistry, // 4
    "3B050000002327201" "LDH" "10206" "U/L" 124.0 222.0 180.0 30.0 0 Chemistry, // 5
    "3B090000002327201" "γ−GT" "10210" "U/L" 13.0 64.0 30.0 18.0 0 Chemistry, // 6
    "3C025000002327101" "尿素窒素" "10230" "mg/dL" 8.0 20.0 14.0 4.0 1 Chemistry, // 7
    "3C015000002327101" "クレアチニン" "10231" "mg/dL" 0.46 1.07 0.78 0.18 2 Chemistry, // 8
    "3C020000002327101" "尿酸" "10232" "mg/dL" 2.6 7.0 5.2 1.2 1 Chemistry, // 9
    "3F050000002327101" "総コレステロール" "10240" "mg/dL" 142.0 248.0 200.0 30.0 0 Chemistry, // 10
    "3F015000002327101" "中性脂肪" "10241" "mg/dL" 40.0 149.0 110.0 45.0 0 Chemistry, // 11
    "3F070000002327101" "HDL−コレステロール" "10242" "mg/dL" 40.0 90.0 58.0 13.0 0 Chemistry, // 12
    "3F077000002327101" "LDL−コレステロール" "10243" "mg/dL" 65.0 139.0 115.0 28.0 0 Chemistry, // 13
    "3D010000002227101" "グルコース" "10250" "mg/dL" 73.0 109.0 95.0 10.0 0 Chemistry, // 14
    "3D046000001906202" "HbA1c（NGSP）" "10251" "%" 4.9 6.0 5.5 0.3 1 Hematology, // 15
    "3H010000002327101" "ナトリウム" "10260" "mmol/L" 138.0 145.0 141.0 1.8 0 Chemistry, // 16
    "3H015000002327101" "カリウム" "10261" "mmol/L" 3.6 4.8 4.2 0.3 1 Chemistry, // 17
    "3H020000002327101" "クロール" "10262" "mmol/L" 101.0 108.0 104.0 1.8 0 Chemistry, // 18
    "5C070000002306001" "CRP" "10270" "mg/dL" 0.0 0.14 0.08 0.05 2 Chemistry, // 19
    "2A990000001930952" "白血球数" "30010" "10^3/μL" 3.3 8.6 6.0 1.4 1 Hematology, // 20
    "2A020000001930952" "赤血球数" "30011" "10^6/μL" 3.86 5.78 4.6 0.4 2 Hematology, // 21
    "2A030000001930952" "ヘモグロビン" "30012" "g/dL" 11.6 16.8 13.8 1.3 1 Hematology, // 22
    "2A040000001930952" "ヘマトクリット" "30013" "%" 35.1 49.6 42.0 3.6 1 Hematology, // 23
    "2A050000001930952" "血小板数" "30014" "10^3/μL" 158.0 348.0 250.0 50.0 0 Hematology, // 24
];

/// Tests ordered together on a routine visit (indexes into [`LAB_TESTS`]).
pub const ROUTINE_PANEL: &[usize] = &[0, 1, 3, 4, 6, 7, 8, 16, 17, 18, 20, 21, 22, 24];
