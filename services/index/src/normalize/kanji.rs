//! Old (旧字体) and variant (異体字) kanji folded to the forms in use today, for matching only.
//!
//! Where the table comes from:
//! - the traditional forms the 常用漢字表 (Cabinet notice, 2010) prints in brackets after each
//!   character it simplified (國 → 国, 櫻 → 桜, 澤 → 沢 …): the first block below;
//! - variants that family-name registers actually hold and that resident-register and 名寄せ
//!   practice treats as the same name: 髙/高, 﨑/嵜/碕/崎, 邉/邊/辺, 冨/富, 嶋/嶌/島, 峯/峰, 舘/館,
//!   栁/柳, 埜/野, 桒/桑, 曻/昇, 𠮷/吉, 淸/清: the second block;
//! - 斉 and 斎 (and their old forms 齊 and 齋) are different characters, but in family names both read
//!   サイ and clerks swap them; they are folded together as a matching rule, not as orthography.
//!
//! NFKC already maps the CJK compatibility ideographs that have decompositions (e.g. U+FA10 塚 → 塚),
//! but not the twelve "unified" ones in that block such as U+FA11 﨑, which are therefore listed here.

/// (old or variant form, form used for matching).
pub const KANJI_FOLDS: &[(char, char)] = &[
    // 常用漢字表 (2010): 旧字体 → 新字体.
    ('亞', '亜'), ('惡', '悪'), ('壓', '圧'), ('圍', '囲'), ('醫', '医'), ('爲', '為'), ('壹', '壱'),
    ('隱', '隠'), ('榮', '栄'), ('營', '営'), ('衞', '衛'), ('驛', '駅'), ('圓', '円'), ('鹽', '塩'),
    ('緣', '縁'), ('艷', '艶'), ('應', '応'), ('歐', '欧'), ('毆', '殴'), ('櫻', '桜'), ('奧', '奥'),
    ('假', '仮'), ('價', '価'), ('畫', '画'), ('會', '会'), ('壞', '壊'), ('懷', '懐'), ('繪', '絵'),
    ('擴', '拡'), ('殼', '殻'), ('覺', '覚'), ('學', '学'), ('嶽', '岳'), ('樂', '楽'), ('勸', '勧'),
    ('卷', '巻'), ('歡', '歓'), ('罐', '缶'), ('觀', '観'), ('關', '関'), ('陷', '陥'), ('巖', '巌'),
    ('顏', '顔'), ('歸', '帰'), ('氣', '気'), ('龜', '亀'), ('僞', '偽'), ('戲', '戯'), ('犧', '犠'),
    ('舊', '旧'), ('據', '拠'), ('擧', '挙'), ('虛', '虚'), ('峽', '峡'), ('挾', '挟'), ('狹', '狭'),
    ('鄕', '郷'), ('曉', '暁'), ('區', '区'), ('驅', '駆'), ('勳', '勲'), ('徑', '径'), ('惠', '恵'),
    ('溪', '渓'), ('經', '経'), ('繼', '継'), ('莖', '茎'), ('螢', '蛍'), ('輕', '軽'), ('鷄', '鶏'),
    ('藝', '芸'), ('擊', '撃'), ('缺', '欠'), ('儉', '倹'), ('劍', '剣'), ('圈', '圏'), ('檢', '検'),
    ('權', '権'), ('獻', '献'), ('縣', '県'), ('險', '険'), ('顯', '顕'), ('驗', '験'), ('嚴', '厳'),
    ('效', '効'), ('廣', '広'), ('恆', '恒'), ('鑛', '鉱'), ('號', '号'), ('國', '国'), ('黑', '黒'),
    ('濟', '済'), ('碎', '砕'), ('劑', '剤'), ('雜', '雑'), ('參', '参'), ('慘', '惨'), ('棧', '桟'),
    ('蠶', '蚕'), ('贊', '賛'), ('殘', '残'), ('絲', '糸'), ('齒', '歯'), ('兒', '児'), ('辭', '辞'),
    ('濕', '湿'), ('實', '実'), ('舍', '舎'), ('寫', '写'), ('釋', '釈'), ('壽', '寿'), ('收', '収'),
    ('從', '従'), ('澁', '渋'), ('獸', '獣'), ('縱', '縦'), ('肅', '粛'), ('處', '処'), ('緖', '緒'),
    ('敍', '叙'), ('奬', '奨'), ('將', '将'), ('燒', '焼'), ('稱', '称'), ('證', '証'), ('乘', '乗'),
    ('剩', '剰'), ('壤', '壌'), ('孃', '嬢'), ('條', '条'), ('淨', '浄'), ('疊', '畳'), ('穰', '穣'),
    ('讓', '譲'), ('釀', '醸'), ('囑', '嘱'), ('觸', '触'), ('寢', '寝'), ('愼', '慎'), ('晉', '晋'),
    ('眞', '真'), ('盡', '尽'), ('圖', '図'), ('粹', '粋'), ('醉', '酔'), ('隨', '随'), ('髓', '髄'),
    ('數', '数'), ('樞', '枢'), ('聲', '声'), ('靜', '静'), ('攝', '摂'), ('竊', '窃'), ('專', '専'),
    ('戰', '戦'), ('淺', '浅'), ('潛', '潜'), ('纖', '繊'), ('踐', '践'), ('錢', '銭'), ('禪', '禅'),
    ('雙', '双'), ('壯', '壮'), ('搜', '捜'), ('插', '挿'), ('爭', '争'), ('總', '総'), ('聰', '聡'),
    ('莊', '荘'), ('裝', '装'), ('騷', '騒'), ('增', '増'), ('藏', '蔵'), ('臟', '臓'), ('卽', '即'),
    ('屬', '属'), ('續', '続'), ('墮', '堕'), ('體', '体'), ('對', '対'), ('帶', '帯'), ('滯', '滞'),
    ('臺', '台'), ('瀧', '滝'), ('擇', '択'), ('澤', '沢'), ('單', '単'), ('擔', '担'), ('膽', '胆'),
    ('團', '団'), ('彈', '弾'), ('斷', '断'), ('遲', '遅'), ('晝', '昼'), ('蟲', '虫'), ('鑄', '鋳'),
    ('廳', '庁'), ('聽', '聴'), ('鎭', '鎮'), ('遞', '逓'), ('鐵', '鉄'), ('轉', '転'), ('點', '点'),
    ('傳', '伝'), ('黨', '党'), ('盜', '盗'), ('燈', '灯'), ('當', '当'), ('鬭', '闘'), ('德', '徳'),
    ('獨', '独'), ('讀', '読'), ('屆', '届'), ('繩', '縄'), ('貳', '弐'), ('惱', '悩'), ('腦', '脳'),
    ('霸', '覇'), ('廢', '廃'), ('拜', '拝'), ('賣', '売'), ('麥', '麦'), ('發', '発'), ('髮', '髪'),
    ('拔', '抜'), ('蠻', '蛮'), ('祕', '秘'), ('濱', '浜'), ('甁', '瓶'), ('拂', '払'), ('佛', '仏'),
    ('竝', '並'), ('變', '変'), ('邊', '辺'), ('辨', '弁'), ('瓣', '弁'), ('辯', '弁'), ('舖', '舗'),
    ('步', '歩'), ('穗', '穂'), ('寶', '宝'), ('豐', '豊'), ('襃', '褒'), ('沒', '没'), ('飜', '翻'),
    ('每', '毎'), ('萬', '万'), ('滿', '満'), ('默', '黙'), ('譯', '訳'), ('藥', '薬'), ('與', '与'),
    ('豫', '予'), ('餘', '余'), ('譽', '誉'), ('搖', '揺'), ('樣', '様'), ('謠', '謡'), ('來', '来'),
    ('賴', '頼'), ('亂', '乱'), ('覽', '覧'), ('龍', '竜'), ('兩', '両'), ('獵', '猟'), ('綠', '緑'),
    ('壘', '塁'), ('勵', '励'), ('禮', '礼'), ('隸', '隷'), ('靈', '霊'), ('齡', '齢'), ('戀', '恋'),
    ('爐', '炉'), ('勞', '労'), ('郞', '郎'), ('樓', '楼'), ('錄', '録'), ('灣', '湾'),
    // Variants held in family-name registers (異体字), folded to the common form.
    ('髙', '高'), ('﨑', '崎'), ('嵜', '崎'), ('碕', '崎'), ('邉', '辺'), ('冨', '富'), ('嶋', '島'),
    ('嶌', '島'), ('峯', '峰'), ('舘', '館'), ('栁', '柳'), ('埜', '野'), ('桒', '桑'), ('曻', '昇'),
    ('𠮷', '吉'), ('淸', '清'),
    // Matching rule, not orthography: サイ in family names.
    ('齋', '斎'), ('齊', '斎'), ('斉', '斎'),
];

/// The form used for matching: the new or common form for a character in [`KANJI_FOLDS`], otherwise
/// `c` itself.
pub fn fold_kanji_char(c: char) -> char {
    KANJI_FOLDS.iter().find(|(old, _)| *old == c).map_or(c, |(_, new)| *new)
}

/// `s` with every character folded by [`fold_kanji_char`].
pub fn fold_kanji(s: &str) -> String {
    s.chars().map(fold_kanji_char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_variants_fold_to_common_forms() {
        assert_eq!(fold_kanji("髙橋"), "高橋");
        assert_eq!(fold_kanji("山﨑"), "山崎");
        assert_eq!(fold_kanji("山嵜"), "山崎");
        assert_eq!(fold_kanji("渡邊"), "渡辺");
        assert_eq!(fold_kanji("渡邉"), "渡辺");
        assert_eq!(fold_kanji("齋藤"), "斎藤");
        assert_eq!(fold_kanji("齊藤"), fold_kanji("斉藤"));
        assert_eq!(fold_kanji("澤田"), "沢田");
        assert_eq!(fold_kanji("濱田"), "浜田");
        assert_eq!(fold_kanji("廣瀬"), "広瀬");
        assert_eq!(fold_kanji("櫻井"), "桜井");
        assert_eq!(fold_kanji("國分"), "国分");
        assert_eq!(fold_kanji("德川"), "徳川");
        assert_eq!(fold_kanji("實"), "実");
        assert_eq!(fold_kanji("龍也"), "竜也");
    }

    #[test]
    fn folding_is_one_step_and_idempotent() {
        for (old, new) in KANJI_FOLDS {
            assert_ne!(old, new);
            assert!(
                KANJI_FOLDS.iter().all(|(o, _)| o != new),
                "{new} is both a target and a source: folding would need two steps"
            );
            assert_eq!(fold_kanji_char(fold_kanji_char(*old)), fold_kanji_char(*old));
        }
        let mut sources: Vec<char> = KANJI_FOLDS.iter().map(|(o, _)| *o).collect();
        sources.sort_unstable();
        let n = sources.len();
        sources.dedup();
        assert_eq!(sources.len(), n, "a source form is listed twice");
    }

    #[test]
    fn other_text_passes_through() {
        assert_eq!(fold_kanji("佐藤 太郎 abc"), "佐藤 太郎 abc");
    }
}
