/**
 * English words that carry Plutchik's eight emotions, written for Storyloom (not derived from a
 * licensed lexicon). A word may carry several emotions. Base forms and common inflections are
 * listed; emotions.ts also strips regular endings. `word:0.5` marks a weak cue: words like
 * "dark" or "wait" colour a scene without saying much on their own.
 */
import type { EmotionLabel } from '../analyser.js';

const LISTS: Record<EmotionLabel, string> = {
  joy: `
    happy happiness joy joyful joyous glad gladness delight delighted delightful cheerful cheer merry mirth laugh
    laughter smile grin giggle chuckle beam beaming pleased pleasure content contentment bliss blissful elated ecstatic
    thrilled excited excitement exhilarated wonderful lovely love adore celebrate celebration hooray hurray yay fun
    enjoy playful warmth sunshine:0.5 glow radiant triumph triumphant victory win won proud pride relief relieved
    grateful gratitude thankful blessed peaceful serene hopeful hug embrace dance sing song:0.5 kiss sweet:0.5 treasure:0.5
    beautiful magnificent marvellous marvelous amazing fantastic jubilant gleeful glee cheering festive carefree
    wonderfully splendid brilliant:0.5 heartwarming laughing twinkle sparkle:0.5 dazzling dream:0.5 paradise
  `,
  trust: `
    trust trusted trustworthy faith faithful loyal loyalty honest honesty friend friendship ally promise believe belief
    rely reliable depend dependable safe safety protect protection shelter guard:0.5 guardian comfort comforting
    reassure reassuring steady steadfast devoted devotion sincere truth confide care caring kind kindness gentle
    respect admire support partner:0.5 family:0.5 home:0.5 welcome mentor wise wisdom certain:0.5 sure:0.5 confidence
    confident assure loyalty together:0.5 companion companionship bond:0.5 oath vow accept acceptance forgive
    forgiveness understand:0.5 understanding patience patient reassurance hand-in-hand
  `,
  fear: `
    fear fearful afraid scared scary frightened frighten frightening fright terror terrified terrifying horror horrified
    horrible dread dreadful panic panicked nervous anxious anxiety worry worried tremble trembling shiver shake:0.5
    shaking scream shriek flee hide hiding danger dangerous threat threaten threatening menace ominous sinister creepy
    eerie haunted haunt ghost monster nightmare alarm alarmed uneasy unease tense tension dark:0.5 darkness:0.5
    shadow:0.5 hunted trapped helpless vulnerable risk peril desperate doom doomed death:0.5 die:0.5 deadly kill
    blood:0.5 wound:0.5 unsafe cower quiver gasp:0.5 petrified spooked jittery jumpy apprehensive timid dreading
    creep:0.5 lurk lurking howl:0.5 scratching:0.5 footsteps:0.5 stalk stalked prey grip:0.5 cold:0.3 whimper
    fled hid shook froze frozen:0.3 shuddered:0.5
  `,
  sadness: `
    sad sadness sorrow sorrowful grief grieve grieving mourn mourning tear tearful cry crying weep weeping sob sobbing
    lonely loneliness alone:0.5 lost:0.5 loss lose:0.5 miss:0.5 missing:0.5 heartbroken heartbreak broken:0.5 despair
    desperate:0.5 hopeless gloomy gloom melancholy misery miserable unhappy depressed depression regret sorry:0.5 ache
    aching pain painful hurt grave:0.5 funeral died death dead:0.5 dying farewell goodbye:0.5 empty emptiness silence:0.3
    silent:0.3 grey:0.3 gray:0.3 bleak weary tired:0.5 exhausted:0.5 abandoned forgotten orphan widow sigh frown
    downcast dejected wistful longing yearning tragic tragedy suffering suffer wretched pity pitiful hollow numb
    illness:0.5 sick:0.5 buried burial mournful gone:0.3 grieved tears sorrowfully crestfallen forlorn wept
  `,
  anger: `
    anger angry angrily rage raging furious fury mad annoyed annoying irritated irritation frustrated frustration hate
    hatred resent resentment bitter bitterly outrage outraged hostile hostility shout yell snarl growl glare slam stomp
    storm:0.5 stormed fight attack punch hit:0.5 strike kick curse swear revenge vengeance spite betray betrayal cruel
    cruelty violent violence destroy smash insult accuse blame argue argument quarrel fume fuming seethe seething scowl
    clench clenched grudge enemy rival:0.5 war:0.5 livid indignant infuriated infuriating enraged wrath temper snap:0.5
    shove roar:0.5 howl:0.3 rant sneer:0.5 spat fought struck swore
  `,
  disgust: `
    disgust disgusted disgusting gross revolting repulsive repulsed sickening nausea nauseous vomit rot rotten rotting
    stink stench foul filth filthy dirty grime slime slimy sludge putrid rancid mould mold decay corpse maggot vile nasty
    ugly:0.5 hideous loathe loathing despise contempt sneer grimace shudder recoil gag greasy sticky:0.5 awful horrid
    reek sewage garbage trash:0.5 yuck ew stank disgrace disgraceful shameful shame:0.5 repugnant odious squirm
  `,
  surprise: `
    surprise surprised surprising sudden suddenly unexpected unexpectedly astonished astonishing astonishment amazed
    amazement shock shocked shocking startled startle stunned stun gasp wonder:0.5 bewildered baffled confused:0.5
    puzzled speechless incredible unbelievable wow whoa jolt blink:0.5 stare:0.5 gape abruptly realise:0.5 realize:0.5
    discover:0.5 discovery reveal revelation twist strange:0.5 strangely odd:0.5 mysterious:0.5 mystery:0.5 marvel
    dumbfounded flabbergasted agape wide-eyed bolt:0.3 burst:0.3 miracle
  `,
  anticipation: `
    anticipate anticipation expect expectation await waiting:0.5 wait:0.5 eager eagerly impatient impatiently hope
    hoping plan:0.5 prepare preparing ready:0.5 soon:0.3 tomorrow:0.3 future someday journey quest search seek
    wondering:0.5 curious curiosity want:0.5 wish dream:0.5 goal ambition ambitious countdown approach:0.5 destiny
    prophecy begin:0.5 beginning:0.5 adventure explore watch:0.3 listen:0.3 excited:0.5 excitement:0.5 longing:0.5
    plot:0.5 scheme:0.5 intend intention yearn promise:0.5 expectant restless:0.5 sought dreamt
  `,
};

/** word → emotions it carries with their weights. */
export const EMOTION_LEXICON: ReadonlyMap<string, readonly (readonly [EmotionLabel, number])[]> = (() => {
  const lexicon = new Map<string, [EmotionLabel, number][]>();
  for (const [label, list] of Object.entries(LISTS) as [EmotionLabel, string][]) {
    for (const entry of list.trim().split(/\s+/)) {
      const [word, weight] = entry.split(':') as [string, string | undefined];
      const senses = lexicon.get(word) ?? [];
      if (!senses.some(([l]) => l === label)) senses.push([label, weight ? Number(weight) : 1]);
      lexicon.set(word, senses);
    }
  }
  return lexicon;
})();
