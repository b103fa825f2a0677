/**
 * Closed word classes the local analyser leans on. English only: a story in another language
 * still gets names from capitalisation, but none of these lists help it (see local.ts).
 * Every entry is lowercase with straight apostrophes, as Token.lower is.
 */

export const wordSet = (list: string): ReadonlySet<string> => new Set(list.trim().split(/\s+/));

/** Function words: no weight in a summary, never a name. */
export const STOPWORDS = wordSet(`
  a about above across after afterwards again against all almost along already also although always am among an and
  another any anybody anyone anything anyway anywhere are around as at away back be became because become becomes been
  before behind being below beside besides between beyond both but by can cannot could did do does doing done down
  during each either else enough even ever every everybody everyone everything everywhere few for from further had has
  have having he her here hers herself him himself his how however i if in inside into is it its itself just least less
  let like many may me meanwhile might mine more most much must my myself near neither never next no nobody none nor not
  nothing now nowhere of off often on once one only onto or other others otherwise our ours ourselves out outside over
  own perhaps quite rather really same several shall she should since so some somebody someone something sometimes
  somewhere soon still such than that the their theirs them themselves then there therefore these they this those though
  through throughout thus till to together too toward towards under unless until up upon us very was we well were what
  whatever when whenever where wherever whether which while who whoever whom whose why will with within without would
  yet you your yours yourself yourselves
  i'm i've i'll i'd you're you've you'll you'd he's he'll he'd she's she'll she'd it's it'll we're we've we'll we'd
  they're they've they'll they'd that's there's here's what's who's where's let's don't doesn't didn't can't couldn't
  won't wouldn't shouldn't isn't aren't wasn't weren't hasn't haven't hadn't mustn't ain't
  said says say asked got get gets went go goes going come came comes
`);

/**
 * Capitalised words that are not characters: sentence adverbs and interjections (capitalised after
 * an opening quote), calendar words, directions, deities, peoples and languages, book furniture.
 */
export const NON_NAMES = new Set([
  ...STOPWORDS,
  ...wordSet(`
    yes yeah yep no nope oh ah aha ahh ahem alas hey hi hello goodbye bye hmm hm huh um uh er erm wow whoa ugh ouch oops
    shh hush psst okay ok please thanks thank sorry sure fine good great right wait look listen come stop run help quick
    damn dammit hell heaven god gods goddess lord jesus christ allah amen hallelujah
    suddenly finally later earlier today tonight tomorrow yesterday morning evening afternoon night noon midnight
    maybe still then there here now again instead besides anyway somehow nevertheless although though because
    monday tuesday wednesday thursday friday saturday sunday weekend
    january february march july september october november december
    spring summer autumn winter christmas easter halloween thanksgiving ramadan diwali hanukkah
    north south east west northern southern eastern western northeast northwest southeast southwest
    earth sun moon internet tv radio
    english french german spanish italian portuguese russian chinese japanese korean arabic indian irish scottish welsh
    british american canadian mexican african european asian greek roman latin dutch swedish norwegian danish polish
    chapter part book volume prologue epilogue act scene the end fin
    everyone everything everybody someone something somebody anyone anything nobody nothing none all each both
    mister sir madam ma'am miss
  `),
]);

/** Function words that are also given names: a name when capitalised mid-sentence ("told Will"). */
export const NAME_LIKE_STOPWORDS = wordSet('will may');

/**
 * Words that open a name: "Captain Reyes", "Old Tom", "Mr. Darcy". Abbreviations map to their
 * full form so "Dr. Hale" and "Doctor Hale" are one person.
 */
export const TITLES: ReadonlyMap<string, string> = new Map([
  ...[...wordSet(`
    mr mrs ms miss mx mister missus master mistress sir dame lady lord madam madame monsieur mademoiselle
    herr frau señor señora señorita signor signora saint old young little
    captain commander lieutenant sergeant detective inspector constable officer agent general colonel major admiral
    marshal sheriff deputy king queen prince princess duke duchess count countess baron baroness emperor empress
    professor doctor nurse father mother brother sister uncle aunt auntie grandma grandpa granny gran grandmother
    grandfather nana mom mum dad papa mama coach chief judge mayor president senator governor reverend
  `)].map((word): [string, string] => [word, word]),
  ['dr', 'doctor'], ['prof', 'professor'], ['capt', 'captain'], ['cpt', 'captain'], ['cmdr', 'commander'],
  ['lt', 'lieutenant'], ['sgt', 'sergeant'], ['det', 'detective'], ['insp', 'inspector'], ['gen', 'general'],
  ['col', 'colonel'], ['st', 'saint'], ['rev', 'reverend'], ['fr', 'father'], ['mr', 'mr'], ['mrs', 'mrs'],
]);

/**
 * Titles that can name a character on their own ("the Captain said", "Grandma laughed"); the
 * rest ("Mr", "Old", "Sir") only ever open a name.
 */
export const STANDALONE_TITLES = wordSet(`
  captain commander lieutenant sergeant detective inspector constable agent general colonel admiral sheriff
  king queen prince princess duke duchess emperor empress professor doctor
  grandma grandpa granny gran grandmother grandfather nana mom mum dad papa mama uncle aunt auntie coach chief judge mayor
`);

/** Full stops after these do not end a sentence. */
export const ABBREVIATIONS = wordSet(`
  mr mrs ms mx dr prof capt cpt cmdr lt sgt det insp gen col maj st rev fr jr sr vs etc mt ft no vol ch approx
`);

/** Lowercase particles inside a name: "Ana de la Cruz", "Ludwig van Beethoven". */
export const NAME_PARTICLES = wordSet('de la le du da di del della der den van von bin ibn al el y');

/** Verbs of speech: "said Mira", "Kade whispered". */
export const SPEECH_VERBS = wordSet(`
  said says say asked asks replied replies answered answers whispered whispers shouted shouts yelled yells cried called
  muttered mutters murmured murmurs grumbled snapped laughed sighed added continued explained insisted demanded exclaimed
  admitted agreed told warned pleaded begged breathed hissed growled roared screamed stammered stuttered repeated
  suggested offered announced declared promised protested observed remarked noted corrected interrupted responded
  teased joked chuckled giggled sobbed groaned rumbled barked boomed purred croaked gasped wondered
`);

/** What people do right after their name, and places rarely do. */
export const PERSON_VERBS = wordSet(`
  smiled nodded laughed frowned grinned sighed shrugged whispered shouted cried wept thought knew felt wanted looked
  turned walked ran stood sat took gave held watched saw heard hurried stepped reached pulled pushed opened closed
  picked put tried decided wondered remembered realised realized noticed hesitated waited stared glanced shook leaned
  climbed knelt jumped swallowed blinked muttered murmured grumbled answered yelled screamed gasped slept woke ate drank
  loved hated liked hoped needed began kept came went left returned arrived followed fell lay hid moved paused rushed raced crept grabbed caught threw lifted dropped
  wrote read sang danced frowned winced flinched shivered trembled bowed knocked opened lived died
  walks runs looks smiles nods laughs turns stands sits waits knows thinks feels wants lives
`);

/** An article before a capitalised word makes it a thing or a place ("the Hollow", "der Hund"). */
export const ARTICLES = wordSet(`
  the a an this these those every
  der die das den dem des ein eine einen einem einer eines le la les un une des du el los las una lo il gli uno het een
`);

/** Prepositions of place: "in Ashford", "across the Wastes". */
export const LOCATIVES = wordSet('in into inside across throughout within beyond through');

/** Half a sign of a place: "the edge of Ashford", "on Hazel Street" (also "the son of Tom", "leaned on Mira"). */
export const WEAK_LOCATIVES = wordSet('of on');

/**
 * Words that make a proper noun a place or a thing: inside it ("Hazel Street", "Castle Rock") or
 * just before it ("the starship Meridian", "the village Ashford").
 */
export const PLACE_WORDS = wordSet(`
  street st road lane avenue drive boulevard square alley hill hills park river lake sea ocean bay beach coast island
  mountain mountains mount peak valley forest wood woods castle palace tower hall manor house abbey church cathedral
  chapel temple bridge gate harbour harbor port station city town village county kingdom empire republic province
  academy school college university hospital inn tavern hotel café cafe bar pub shop market farm ranch mill
  starship ship spaceship vessel planet moon system galaxy sector colony falls springs heights creek ridge fields meadow
  bridge wharf dock docks quarter district
`);

/** Words that cancel the emotion or trait after them. */
export const NEGATORS = wordSet(`
  not no never without hardly barely scarcely nor neither nobody nothing none cannot
`);

/** Words that strengthen the emotion after them. */
export const INTENSIFIERS = wordSet(`
  very so really truly deeply utterly completely extremely incredibly terribly awfully too totally absolutely
  immensely enormously most
`);

/** "n't" forms negate like "not". */
export const isNegator = (lower: string): boolean => NEGATORS.has(lower) || lower.endsWith("n't");
