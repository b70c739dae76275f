//! Japanese name pools with their katakana readings. Every character is in JIS X 0208 (the
//! `pools_are_jis_x_0208` test checks), so names survive ISO-2022-JP: 髙 (U+9AD9) and 﨑 (U+FA11),
//! common in real registers, are IBM extensions outside JIS X 0208 and are deliberately absent.

/// A family name: kanji, reading, and a relative frequency weight.
#[derive(Debug)]
pub struct FamilyName {
    pub kanji: &'static str,
    pub kana: &'static str,
    pub weight: u32,
}

/// A given name with its reading and the birth era it is typical of.
#[derive(Debug)]
pub struct GivenName {
    pub kanji: &'static str,
    pub kana: &'static str,
    /// 0: born before 1960, 1: 1960–1989, 2: 1990 and later.
    pub era: u8,
}

macro_rules! family {
    ($($k:literal $r:literal $w:literal),+ $(,)?) => { &[$(FamilyName { kanji: $k, kana: $r, weight: $w }),+] };
}
macro_rules! given {
    ($($k:literal $r:literal $e:literal),+ $(,)?) => { &[$(GivenName { kanji: $k, kana: $r, era: $e }),+] };
}

/// Family names common in Japan and in Miyagi in particular (千葉, 菅原, 今野, 及川, 熊谷 …).
pub const FAMILY: &[FamilyName] = family![
    "佐藤" "サトウ" 60, "高橋" "タカハシ" 30, "鈴木" "スズキ" 28, "渡辺" "ワタナベ" 18, "伊藤" "イトウ" 18,
    "阿部" "アベ" 24, "千葉" "チバ" 22, "菅原" "スガワラ" 20, "佐々木" "ササキ" 22, "遠藤" "エンドウ" 14,
    "斎藤" "サイトウ" 14, "加藤" "カトウ" 12, "小野" "オノ" 12, "今野" "コンノ" 14, "後藤" "ゴトウ" 10,
    "菊地" "キクチ" 10, "及川" "オイカワ" 10, "熊谷" "クマガイ" 10, "三浦" "ミウラ" 9, "大内" "オオウチ" 6,
    "菅野" "カンノ" 8, "庄司" "ショウジ" 6, "吉田" "ヨシダ" 8, "山田" "ヤマダ" 6, "中村" "ナカムラ" 7,
    "小林" "コバヤシ" 6, "木村" "キムラ" 6, "桜井" "サクライ" 5, "沢田" "サワダ" 5, "浜田" "ハマダ" 4,
    "島田" "シマダ" 5, "広瀬" "ヒロセ" 4, "国分" "コクブン" 5, "富田" "トミタ" 4, "長谷川" "ハセガワ" 5,
    "松本" "マツモト" 5, "武田" "タケダ" 5, "太田" "オオタ" 5, "大友" "オオトモ" 5, "相沢" "アイザワ" 4,
    "丹野" "タンノ" 4, "早坂" "ハヤサカ" 4, "八巻" "ヤマキ" 3, "赤間" "アカマ" 3, "狩野" "カノウ" 3,
    "引地" "ヒキチ" 3, "高野" "タカノ" 4, "渋谷" "シブヤ" 3, "尾形" "オガタ" 4, "小山" "オヤマ" 4,
    "村上" "ムラカミ" 4, "山内" "ヤマウチ" 3, "大槻" "オオツキ" 3, "門間" "モンマ" 3, "宍戸" "シシド" 2,
    "畠山" "ハタケヤマ" 4, "須藤" "スドウ" 3, "昆野" "コンノ" 2, "小松" "コマツ" 3, "滝沢" "タキザワ" 3,
];

/// Given names, with readings that exercise small kana (ショウ, キョウ, リョウ), long vowels and ヅ/ジ.
pub const GIVEN_MALE: &[GivenName] = given![
    "茂" "シゲル" 0, "清" "キヨシ" 0, "勇" "イサム" 0, "正雄" "マサオ" 0, "和夫" "カズオ" 0, "弘" "ヒロシ" 0,
    "実" "ミノル" 0, "勝" "マサル" 0, "一郎" "イチロウ" 0, "昭二" "ショウジ" 0, "武" "タケシ" 0, "栄" "サカエ" 0,
    "隆" "タカシ" 1, "浩二" "コウジ" 1, "誠" "マコト" 1, "健一" "ケンイチ" 1, "修" "オサム" 1, "秀樹" "ヒデキ" 1,
    "雄一" "ユウイチ" 1, "大輔" "ダイスケ" 1, "恭平" "キョウヘイ" 1, "直樹" "ナオキ" 1, "博之" "ヒロユキ" 1,
    "譲二" "ジョウジ" 1, "竜也" "タツヤ" 1, "真一" "シンイチ" 1, "亮" "リョウ" 1, "俊介" "シュンスケ" 1,
    "翔太" "ショウタ" 2, "拓也" "タクヤ" 2, "健太" "ケンタ" 2, "蓮" "レン" 2, "陽翔" "ハルト" 2, "悠真" "ユウマ" 2,
    "大翔" "ヒロト" 2, "湊" "ミナト" 2, "颯太" "ソウタ" 2, "翔" "ショウ" 2, "涼介" "リョウスケ" 2, "優斗" "ユウト" 2,
];

pub const GIVEN_FEMALE: &[GivenName] = given![
    "千代" "チヨ" 0, "静子" "シズコ" 0, "節子" "セツコ" 0, "幸子" "サチコ" 0, "和子" "カズコ" 0, "花子" "ハナコ" 0,
    "恵子" "ケイコ" 0, "京子" "キョウコ" 0, "洋子" "ヨウコ" 0, "千鶴" "チヅル" 0, "澄江" "スミエ" 0, "きよ" "キヨ" 0,
    "裕子" "ユウコ" 1, "真由美" "マユミ" 1, "由美子" "ユミコ" 1, "久美子" "クミコ" 1, "智子" "トモコ" 1,
    "明美" "アケミ" 1, "直美" "ナオミ" 1, "紀子" "ノリコ" 1, "美穂" "ミホ" 1, "翔子" "ショウコ" 1, "陽子" "ヨウコ" 1,
    "恭子" "キョウコ" 1, "美紀" "ミキ" 1, "瑞穂" "ミズホ" 1, "優子" "ユウコ" 1, "実佳" "ミカ" 1,
    "結衣" "ユイ" 2, "陽菜" "ヒナ" 2, "美咲" "ミサキ" 2, "さくら" "サクラ" 2, "愛" "アイ" 2, "千尋" "チヒロ" 2,
    "美月" "ミヅキ" 2, "凛" "リン" 2, "彩花" "アヤカ" 2, "莉子" "リコ" 2, "葵" "アオイ" 2, "芽衣" "メイ" 2,
];

/// Given names parents give twins: related on purpose, one kanji shared (健太/健二) or one reading
/// written with other kanji (大輝/大樹, both ダイキ). Such pairs share family name, birth date,
/// address and telephone and differ by one character: the hardest negatives linkage sees.
pub const TWINS_MALE: &[(GivenName, GivenName)] = &[
    (
        GivenName { kanji: "健太", kana: "ケンタ", era: 2 },
        GivenName { kanji: "健二", kana: "ケンジ", era: 2 },
    ),
    (
        GivenName { kanji: "大輝", kana: "ダイキ", era: 2 },
        GivenName { kanji: "大樹", kana: "ダイキ", era: 2 },
    ),
    (
        GivenName { kanji: "拓也", kana: "タクヤ", era: 2 },
        GivenName { kanji: "拓海", kana: "タクミ", era: 2 },
    ),
    (
        GivenName { kanji: "翔太", kana: "ショウタ", era: 2 },
        GivenName { kanji: "翔平", kana: "ショウヘイ", era: 2 },
    ),
    (
        GivenName { kanji: "優斗", kana: "ユウト", era: 2 },
        GivenName { kanji: "優太", kana: "ユウタ", era: 2 },
    ),
    (
        GivenName { kanji: "和也", kana: "カズヤ", era: 1 },
        GivenName { kanji: "達也", kana: "タツヤ", era: 1 },
    ),
    (
        GivenName { kanji: "一郎", kana: "イチロウ", era: 0 },
        GivenName { kanji: "二郎", kana: "ジロウ", era: 0 },
    ),
    (
        GivenName { kanji: "正雄", kana: "マサオ", era: 0 },
        GivenName { kanji: "正夫", kana: "マサオ", era: 0 },
    ),
    (
        GivenName { kanji: "浩二", kana: "コウジ", era: 1 },
        GivenName { kanji: "浩三", kana: "コウゾウ", era: 1 },
    ),
];

/// Female twins' names (see [`TWINS_MALE`]).
pub const TWINS_FEMALE: &[(GivenName, GivenName)] = &[
    (
        GivenName { kanji: "彩花", kana: "アヤカ", era: 2 },
        GivenName { kanji: "彩香", kana: "アヤカ", era: 2 },
    ),
    (
        GivenName { kanji: "優花", kana: "ユウカ", era: 2 },
        GivenName { kanji: "優奈", kana: "ユウナ", era: 2 },
    ),
    (GivenName { kanji: "真由", kana: "マユ", era: 2 }, GivenName { kanji: "真央", kana: "マオ", era: 2 }),
    (GivenName { kanji: "結衣", kana: "ユイ", era: 2 }, GivenName { kanji: "結菜", kana: "ユイナ", era: 2 }),
    (
        GivenName { kanji: "陽子", kana: "ヨウコ", era: 1 },
        GivenName { kanji: "洋子", kana: "ヨウコ", era: 1 },
    ),
    (
        GivenName { kanji: "恵子", kana: "ケイコ", era: 0 },
        GivenName { kanji: "啓子", kana: "ケイコ", era: 0 },
    ),
    (
        GivenName { kanji: "千尋", kana: "チヒロ", era: 2 },
        GivenName { kanji: "千夏", kana: "チナツ", era: 2 },
    ),
    (GivenName { kanji: "美咲", kana: "ミサキ", era: 2 }, GivenName { kanji: "美紀", kana: "ミキ", era: 1 }),
];

/// Boy–girl twins' names: the boy's first, the girl's second.
pub const TWINS_MIXED: &[(GivenName, GivenName)] = &[
    (
        GivenName { kanji: "優太", kana: "ユウタ", era: 2 },
        GivenName { kanji: "優花", kana: "ユウカ", era: 2 },
    ),
    (
        GivenName { kanji: "陽斗", kana: "ハルト", era: 2 },
        GivenName { kanji: "陽菜", kana: "ハルナ", era: 2 },
    ),
    (
        GivenName { kanji: "翔", kana: "ショウ", era: 2 },
        GivenName { kanji: "翔子", kana: "ショウコ", era: 1 },
    ),
    (GivenName { kanji: "拓真", kana: "タクマ", era: 2 }, GivenName { kanji: "真奈", kana: "マナ", era: 2 }),
];

/// New (常用) → old (旧字体) kanji forms, as registers record them. All forms are in JIS X 0208.
pub const OLD_FORMS: &[(char, char)] = &[
    ('沢', '澤'),
    ('辺', '邊'),
    ('斎', '齋'),
    ('浜', '濱'),
    ('島', '嶋'),
    ('桜', '櫻'),
    ('広', '廣'),
    ('国', '國'),
    ('真', '眞'),
    ('実', '實'),
    ('恵', '惠'),
    ('富', '冨'),
    ('滝', '瀧'),
    ('竜', '龍'),
    ('条', '條'),
    ('静', '靜'),
    ('栄', '榮'),
];

/// Characters a clerk may type instead of a homophone (a typo class seen in registers).
pub const KANJI_CONFUSIONS: &[(char, char)] = &[
    ('裕', '祐'),
    ('紀', '記'),
    ('美', '実'),
    ('子', '仔'),
    ('和', '一'),
    ('恵', '慧'),
    ('智', '知'),
    ('博', '浩'),
    ('雄', '男'),
    ('樹', '喜'),
    ('斎', '斉'),
    ('菊', '鞠'),
    ('崎', '埼'),
    ('野', '埜'),
];

/// Katakana pairs confused in typing or reading (voicing, look-alikes).
pub const KANA_CONFUSIONS: &[(char, char)] = &[
    ('シ', 'ツ'),
    ('ソ', 'ン'),
    ('タ', 'ダ'),
    ('カ', 'ガ'),
    ('ハ', 'バ'),
    ('ト', 'ド'),
    ('ク', 'グ'),
    ('サ', 'ザ'),
    ('キ', 'ギ'),
    ('コ', 'ゴ'),
    ('ウ', 'ワ'),
    ('ヒ', 'ビ'),
    ('ス', 'ズ'),
    ('テ', 'デ'),
];

/// Small kana and the large forms older systems store instead.
pub const SMALL_KANA: &[(char, char)] = &[
    ('ャ', 'ヤ'),
    ('ュ', 'ユ'),
    ('ョ', 'ヨ'),
    ('ッ', 'ツ'),
    ('ァ', 'ア'),
    ('ィ', 'イ'),
    ('ゥ', 'ウ'),
    ('ェ', 'エ'),
    ('ォ', 'オ'),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::charset::is_jis_x_0208 as in_jis_x_0208;

    #[test]
    fn pools_are_jis_x_0208() {
        let mut all = String::new();
        for f in FAMILY {
            all.push_str(f.kanji);
            all.push_str(f.kana);
        }
        let twins = TWINS_MALE.iter().chain(TWINS_FEMALE).chain(TWINS_MIXED).flat_map(|(a, b)| [a, b]);
        for g in GIVEN_MALE.iter().chain(GIVEN_FEMALE).chain(twins) {
            all.push_str(g.kanji);
            all.push_str(g.kana);
        }
        for (a, b) in OLD_FORMS.iter().chain(KANJI_CONFUSIONS).chain(KANA_CONFUSIONS).chain(SMALL_KANA) {
            all.push(*a);
            all.push(*b);
        }
        for c in all.chars() {
            assert!(in_jis_x_0208(&c.to_string()), "{c} (U+{:04X}) is not in JIS X 0208", c as u32);
        }
        assert!(!in_jis_x_0208("髙"));
        assert!(!in_jis_x_0208("①"));
    }
}
