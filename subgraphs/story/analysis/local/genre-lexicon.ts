/**
 * Words that mark a genre, weighted by how much they give it away: "starship" (3) says science
 * fiction almost alone, "ship" (0.5) barely. Phrases are matched on the lowercased word stream.
 * Written for Storyloom. Plurals are found by stripping "s"/"es" (genre.ts).
 */
import type { Genre } from '../analyser.js';

const LISTS: Record<Genre, string> = {
  fantasy: `
    dragon:3 wizard:3 witch:2 sorcerer:3 sorceress:3 mage:3 magic:2 magical:2 spell:2 enchanted:1.5 enchantment:2 elf:3
    elves:3 dwarf:2 dwarves:3 orc:3 goblin:3 troll:2 sword:1.5 kingdom:1 realm:2 rune:3 wand:3 potion:2 prophecy:2
    amulet:2 quest:1.5 unicorn:2 griffin:3 gryphon:3 phoenix:2 sorcery:3 necromancer:3 oracle:1.5 scales:1 wyvern:3
    spellbook:3 incantation:3 enchanter:3 fae:3 sprite:2 staff:0.5 hoard:2 wings:0.5 mountain:0.3 tower:0.5
    ancient:0.5 cavern:1 familiar:0.3
  `,
  'science-fiction': `
    starship:3 spaceship:3 spacecraft:3 planet:2 galaxy:3 robot:3 android:3 alien:2.5 laser:2 orbit:2 asteroid:2
    hyperspace:3 warp:2 cyborg:3 colony:1.5 airlock:3 cockpit:1.5 hull:1.5 thrusters:3 thruster:3 reactor:2
    light-years:3 interstellar:3 astronaut:3 space:1.5 ai:2 hologram:3 holographic:3 quantum:2 drone:1.5 cryosleep:3
    stasis:2 telemetry:2 console:1 sensors:1.5 sensor:1.5 circuits:2 nanobots:3 clone:2 teleport:3 cosmos:1.5
    spacesuit:3 shuttle:2 bridge:0.3 module:1.5 docking:2 gravity:1.5 starlight:0.5 solar:1.5 lunar:1.5 mars:1
    orbital:3 cybernetic:3 simulation:1.5 engine:0.5 station:1 "space station":3 "star system":3 visor:1.5
  `,
  mystery: `
    detective:3 clue:3 murder:2.5 murdered:2.5 murderer:3 suspect:3 alibi:3 inspector:2 investigation:2 investigate:2
    evidence:2 witness:2 victim:2 culprit:3 motive:3 crime:2 sleuth:3 fingerprints:3 fingerprint:3 case:0.5
    mystery:2 puzzle:1 confession:1.5 interrogate:2 police:1.5 constable:2 forensic:3 testimony:2 stolen:1 theft:2
    thief:1 poison:2 poisoned:2.5 "locked room":3 whodunit:3 deduce:3 deduction:3 magnifying:2 footprints:1.5
    questioned:1 accused:1 guilty:1.5 innocent:0.5 notebook:0.5 library:0.3 butler:1.5 "crime scene":3 killer:2
  `,
  thriller: `
    chase:1.5 hostage:3 bomb:2.5 assassin:3 conspiracy:3 spy:2.5 agent:1.5 kidnap:3 kidnapped:3 ransom:3 escape:1
    gun:1.5 pistol:2 sniper:3 countdown:2 deadline:1 surveillance:2.5 terrorist:3 danger:1 threat:1.5 ambush:2
    "double agent":3 heist:3 cartel:3 mercenary:2 trap:1 pursuit:2 explosion:1.5 blackmail:3 operative:2.5 handler:2
    safehouse:3 "safe house":3 target:1 tracking:1.5 wiretap:3 intelligence:1 classified:2 encrypted:2 bullet:1.5
  `,
  horror: `
    ghost:2.5 haunted:3 demon:3 blood:1.5 scream:1.5 screamed:1.5 corpse:2.5 zombie:3 vampire:3 monster:2 terror:2
    dread:2 shadow:0.5 creature:1 grave:1 graveyard:3 cemetery:2 coffin:2.5 skull:2 possessed:3 curse:1 cursed:1
    nightmare:1.5 rot:1.5 rotting:2.5 flesh:1.5 bones:1 eerie:2 creepy:2 sinister:2 werewolf:3 evil:1.5 horror:2 gore:3
    bleeding:1.5 ritual:1.5 exorcism:3 spirits:1.5 poltergeist:3 crypt:2.5 cellar:1 attic:1 scratching:2 whispering:1
    claws:1.5 fangs:2 undead:3 shrieked:1.5 candle:0.5 darkness:0.5 basement:1 footsteps:1 creaked:1 creaking:1
  `,
  romance: `
    love:1.5 loved:1.5 kiss:2.5 kissed:2.5 romance:3 romantic:3 wedding:2 marry:2.5 married:1.5 proposal:2 propose:2
    date:1 boyfriend:2 girlfriend:2 lover:3 darling:2 sweetheart:2.5 embrace:1.5 blush:2 blushed:2 flirt:3 flirted:3
    passion:2 beloved:2.5 valentine:3 fiancé:3 fiance:3 fiancée:3 bride:2 groom:1.5 honeymoon:3 affection:2 crush:1.5
    tender:1 lips:1.5 heart:0.5 heartbeat:1 "fell in love":4 "in love":2 dance:0.5 roses:1
  `,
  adventure: `
    journey:1.5 expedition:3 treasure:2.5 map:1.5 explore:2 explorer:2.5 jungle:2 island:1.5 voyage:2.5 pirate:2.5
    ship:1 sail:1.5 sailed:1.5 mountain:1 cliff:1 cave:1.5 desert:1 compass:2 raft:2 climb:1 climbed:1 trek:2
    wilderness:2 discover:1 discovered:1 ruins:2 temple:1 canyon:1.5 summit:1.5 rope:1 camp:1 storm:1 river:0.5
    adventure:2 lagoon:2 volcano:2 glacier:2 waterfall:1.5 trail:1 quest:1 captain:0.3 "set sail":3 rapids:2
  `,
  comedy: `
    laughed:1 joke:2 jokes:2 funny:2 hilarious:3 ridiculous:2 silly:1.5 giggle:1.5 giggled:1.5 prank:3 clown:2.5
    chaos:1 absurd:2 embarrassing:1.5 embarrassed:1 oops:3 slipped:1 banana:1.5 pie:1 snort:2 snorted:2 comedy:3
    mishap:2.5 sarcastic:1 accidentally:1.5 disaster:0.5 chicken:0.5 pants:1.5 underpants:3 sneeze:1.5 tripped:1.5
    whoopee:3 pun:2.5 punchline:3 goat:1 custard:1.5 llama:1.5
  `,
  drama: `
    funeral:2.5 divorce:3 hospital:1.5 illness:2 cancer:2.5 diagnosis:2 argument:2 argued:2 betrayal:2 betrayed:2
    grief:2 family:1 forgive:2 forgiveness:2 regret:2 secret:0.5 inheritance:2 estranged:3 tears:1 cried:1 affair:2
    custody:3 addiction:3 bankrupt:2 trial:1 court:1 silence:0.5 grave:0.5 mourners:3 hospice:3 apology:1.5 sorry:0.5
    father:0.5 mother:0.5 marriage:1 eviction:3 debt:1.5 unemployment:2 scholarship:1 "last time":1
  `,
  'fairy-tale': `
    princess:2.5 prince:2 castle:1.5 king:1.5 queen:1.5 fairy:3 godmother:3 witch:1.5 wolf:1.5 enchanted:1.5 spell:1
    curse:1.5 cursed:1.5 kingdom:1.5 frog:2 giant:1.5 beanstalk:3 slipper:2.5 tower:1 woodcutter:3 stepmother:3
    goose:1.5 golden:1 wishes:2 wish:1.5 magic:1 ball:0.5 "once upon a time":10 "happily ever after":10 "ever after":3
    gingerbread:3 dwarf:1 spindle:3 maiden:2.5 huntsman:3 peasant:1.5 miller:2 "long ago":1.5 cottage:1 forest:0.5
    riddle:1 "far away":1 talking:0.5 tailor:1.5 shoemaker:2 elves:1 fox:1 hare:1.5 tortoise:2 crow:1 moral:2 fable:3
  `,
  historical: `
    century:1.5 war:1.5 soldier:1.5 empire:1.5 emperor:2 revolution:2.5 colonial:2.5 victorian:3 medieval:3 roman:2
    legion:2.5 knight:1.5 musket:3 cannon:2 carriage:2 telegraph:3 railway:1.5 steam:1 plague:2 monarch:2 parliament:2
    lord:1 duke:2 duchess:2 trench:2.5 trenches:3 regiment:3 tsar:3 pharaoh:3 samurai:3 shogun:3 crusade:3 viking:3
    battlefield:2 rations:2 wartime:3 blitz:3 corset:2.5 bonnet:2 horseback:1.5 manor:1.5 lantern:0.5 candlelight:1
    quill:2 parchment:1.5 gaslight:3 steamship:3 factory:1 mill:0.5 workhouse:3 serf:3 feudal:3 abbey:1.5
  `,
  'slice-of-life': `
    coffee:1.5 café:2 cafe:2 kitchen:1 apartment:1.5 school:1 homework:2 breakfast:1.5 lunch:1.5 dinner:1 weekend:2
    neighbour:2 neighbor:2 bus:1.5 friend:1 friends:1 laundry:2.5 groceries:2.5 grocery:2 supermarket:2 office:1 job:1
    shift:1 commute:2.5 park:1 bakery:2 tea:1 sofa:1.5 couch:1.5 texted:2 phone:1 birthday:1.5 picnic:2 bike:1.5
    bicycle:1.5 movie:1 roommate:2.5 flat:0.5 balcony:1.5 cupcakes:1.5 croissant:2 barista:3 playlist:2 garden:0.5
    neighbourhood:2 neighborhood:2 saturday:1 sunday:1 afternoon:0.5 mug:1.5 recipe:1.5 sandwich:1.5 chores:2 bookshop:1.5
  `,
};

export interface GenreCue {
  genre: Genre;
  weight: number;
}

/** Single words, and phrases (space-separated, lowercase) found by substring on the word stream. */
export const GENRE_WORDS: ReadonlyMap<string, readonly GenreCue[]> = new Map();
export const GENRE_PHRASES: ReadonlyMap<string, readonly GenreCue[]> = new Map();

for (const [genre, list] of Object.entries(LISTS) as [Genre, string][]) {
  for (const [, quoted, plain, weight] of list.matchAll(/(?:"([^"]+)"|(\S+?)):([\d.]+)/g)) {
    const target = (quoted ? GENRE_PHRASES : GENRE_WORDS) as Map<string, GenreCue[]>;
    const key = (quoted ?? plain)!;
    target.set(key, [...(target.get(key) ?? []), { genre, weight: Number(weight) }]);
  }
}
