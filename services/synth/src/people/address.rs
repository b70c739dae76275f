//! Addresses in Miyagi prefecture and the ways registers write them.
//!
//! Place names are real; postcodes have the right shape and area prefix but were not checked one by
//! one against Japan Post's table, so the corpus must not be used as an address master.

/// A town (町名) within a city or ward, with its postcode.
pub struct Town {
    pub city: &'static str,
    pub town: &'static str,
    pub postcode: &'static str,
    /// Which area (for choosing nearby facilities): index into [`AREAS`].
    pub area: usize,
}

/// Areas of the prefecture; facilities and people are placed in them.
pub const AREAS: &[&str] = &["仙台", "石巻", "気仙沼", "大崎", "県南", "登米・栗原"];

macro_rules! towns {
    ($($c:literal $t:literal $p:literal $a:literal),+ $(,)?) => { &[$(Town { city: $c, town: $t, postcode: $p, area: $a }),+] };
}

pub const TOWNS: &[Town] = towns![
    "仙台市青葉区" "一番町" "9800811" 0, "仙台市青葉区" "国分町" "9800803" 0, "仙台市青葉区" "上杉" "9800011" 0,
    "仙台市青葉区" "八幡" "9800871" 0, "仙台市青葉区" "木町通" "9800801" 0, "仙台市青葉区" "中央" "9800021" 0,
    "仙台市青葉区" "本町" "9800014" 0, "仙台市青葉区" "花京院" "9800013" 0, "仙台市宮城野区" "榴岡" "9830852" 0,
    "仙台市宮城野区" "原町" "9830841" 0, "仙台市宮城野区" "福室" "9830005" 0, "仙台市若林区" "荒井" "9840032" 0,
    "仙台市若林区" "連坊" "9840073" 0, "仙台市若林区" "卸町" "9840015" 0, "仙台市太白区" "長町" "9820011" 0,
    "仙台市太白区" "富沢" "9820036" 0, "仙台市太白区" "八木山本町" "9820801" 0, "仙台市泉区" "泉中央" "9813133" 0,
    "仙台市泉区" "将監" "9813132" 0, "塩竈市" "海岸通" "9850002" 0, "多賀城市" "中央" "9850873" 0,
    "名取市" "増田" "9811224" 4, "岩沼市" "桜" "9892433" 4, "白石市" "沖" "9890247" 4, "角田市" "角田" "9811505" 4,
    "柴田郡大河原町" "新南" "9891245" 4, "石巻市" "中央" "9860822" 1, "石巻市" "蛇田" "9860861" 1,
    "石巻市" "渡波" "9862211" 1, "東松島市" "矢本" "9810503" 1, "女川町" "女川" "9862261" 1,
    "気仙沼市" "田中前" "9880053" 2, "気仙沼市" "古町" "9880043" 2, "気仙沼市" "本吉町" "9880341" 2,
    "本吉郡南三陸町" "志津川" "9860752" 2, "大崎市" "古川駅前大通" "9896162" 3, "大崎市" "古川中里" "9896171" 3,
    "大崎市" "鳴子温泉" "9896823" 3, "加美郡加美町" "中新田" "9814262" 3, "登米市" "迫町佐沼" "9870511" 5,
    "登米市" "中田町上沼" "9870602" 5, "栗原市" "築館" "9872252" 5, "栗原市" "若柳" "9895501" 5,
];

/// A person's address: town, 丁目 (0 when the town has none), 番地 and 号, and maybe a building.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub town: usize,
    pub chome: u8,
    pub banchi: u16,
    pub go: u16,
    pub building: Option<(&'static str, u16)>,
}

/// Apartment names for the building part.
pub const BUILDINGS: &[&str] = &[
    "コーポ青葉",
    "メゾン杜",
    "ハイツ若葉",
    "グランドール泉",
    "サンライズ長町",
    "パレス榴岡",
    "リバーサイド広瀬",
];

/// How a facility's system writes the 丁目・番地・号 part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AddressStyle {
    /// 一丁目２番３号 (kanji 丁目, full-width digits).
    Kanji,
    /// 1-2-3 (ASCII hyphens).
    Hyphen,
    /// １−２−３ (full-width digits, U+2212 as in the guideline's samples).
    FullHyphen,
    /// 1丁目2-3.
    Mixed,
}

impl AddressStyle {
    pub const ALL: [AddressStyle; 4] = [Self::Kanji, Self::Hyphen, Self::FullHyphen, Self::Mixed];

    pub fn tag(self) -> &'static str {
        match self {
            Self::Kanji => "addr-kanji",
            Self::Hyphen => "addr-hyphen",
            Self::FullHyphen => "addr-fullwidth",
            Self::Mixed => "addr-mixed",
        }
    }
}

fn full_width(n: u32) -> String {
    n.to_string().chars().map(|c| char::from_u32(c as u32 - '0' as u32 + '０' as u32).unwrap_or(c)).collect()
}

fn kanji_numeral(n: u8) -> &'static str {
    ["〇", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十"]
        .get(n as usize)
        .copied()
        .unwrap_or("十")
}

impl Address {
    pub fn town(&self) -> &'static Town {
        &TOWNS[self.town]
    }

    /// `9800811` → `980-0811`.
    pub fn postcode(&self) -> String {
        let p = self.town().postcode;
        format!("{}-{}", &p[..3], &p[3..])
    }

    /// The address as a facility writes it (without the postcode).
    pub fn render(&self, style: AddressStyle, with_prefecture: bool, with_building: bool) -> String {
        let t = self.town();
        let mut s = String::new();
        if with_prefecture {
            s.push_str("宮城県");
        }
        s.push_str(t.city);
        s.push_str(t.town);
        let (c, b, g) = (u32::from(self.chome), u32::from(self.banchi), u32::from(self.go));
        let has_chome = self.chome > 0;
        match style {
            Style::Kanji => {
                if has_chome {
                    s.push_str(kanji_numeral(self.chome));
                    s.push_str("丁目");
                }
                s.push_str(&format!("{}番{}号", full_width(b), full_width(g)));
            }
            Style::Hyphen => {
                if has_chome {
                    s.push_str(&format!("{c}-"));
                }
                s.push_str(&format!("{b}-{g}"));
            }
            Style::FullHyphen => {
                if has_chome {
                    s.push_str(&format!("{}−", full_width(c)));
                }
                s.push_str(&format!("{}−{}", full_width(b), full_width(g)));
            }
            Style::Mixed => {
                if has_chome {
                    s.push_str(&format!("{c}丁目"));
                }
                s.push_str(&format!("{b}-{g}"));
            }
        }
        if with_building && let Some((name, room)) = self.building {
            let sep = if style == Style::Kanji || style == Style::FullHyphen { "　" } else { " " };
            s.push_str(sep);
            s.push_str(name);
            s.push_str(&room.to_string());
        }
        s
    }
}

use AddressStyle as Style;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_write_the_same_place_differently() {
        let a = Address { town: 0, chome: 1, banchi: 2, go: 13, building: Some(("コーポ青葉", 101)) };
        assert_eq!(a.render(Style::Kanji, true, false), "宮城県仙台市青葉区一番町一丁目２番１３号");
        assert_eq!(a.render(Style::Hyphen, false, true), "仙台市青葉区一番町1-2-13 コーポ青葉101");
        assert_eq!(a.render(Style::FullHyphen, false, false), "仙台市青葉区一番町１−２−１３");
        assert_eq!(a.render(Style::Mixed, false, false), "仙台市青葉区一番町1丁目2-13");
        assert_eq!(a.postcode(), "980-0811");
        for t in TOWNS {
            assert!(crate::charset::is_jis_x_0208(&format!("{}{}", t.city, t.town)), "{}", t.town);
            assert_eq!(t.postcode.len(), 7);
        }
    }
}
