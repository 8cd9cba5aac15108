"""The English lexicon of the built-in sentence generator: its word lists.

Lists are written as compact strings and parsed once at import. Conventions inside them:
``_`` joins a multi-word item ("New_York"), ``a/b`` gives an irregular plural ("man/men"),
``word:tag`` attaches a tag (a gender, a preposition, a sound, or object categories of a verb).

Object categories of transitive verbs: t thing, f food (countable or mass), d drink, x text,
s story (something told), p person, l place, a animal, m meal.

Word forms (articles, plurals, verb forms, numbers) are made in :mod:`data.corpus.inflection`
and re-exported here.
"""

from __future__ import annotations

from data.corpus.inflection import (  # noqa: F401  (re-exported)
    DOUBLING,
    IRREGULAR,
    article,
    gerund,
    number_words,
    ordinal_words,
    participle,
    past,
    plural,
    split_plural,
    third_person,
    year_words,
)


def _items(text: str) -> list[str]:
    return [w.replace("_", " ") for w in text.split()]


def _tagged(text: str) -> list[tuple[str, str]]:
    return [(w.partition(":")[0], w.partition(":")[2]) for w in _items(text)]


# --- people --------------------------------------------------------------------------------------

FEMALE_NAMES = _items("""
Anna Maria Emma Olivia Sophie Laura Sarah Lucy Grace Hannah Julia Clara Nora Alice Rosa Elena Mia Zoe Ella
Lily Amy Helen Kate Rachel Nina Vera Ruth Irene Martha Linda Susan Paula Diana Fiona Jane Ellen Ida Eva Iris
Emily Chloe Leah Megan Naomi Tara Wendy Priya Aisha Mei Sofia Carmen Ingrid Greta Freya Maya Olga Tanya Beth
Amelia Isla Harriet Lena Marta Bella""")
MALE_NAMES = _items("""
Tom James David Peter Paul Mark John Sam Ben Jack Leo Max Oscar Henry Noah Liam Daniel Adam Lucas Hugo Felix
Victor Simon Martin Oliver Ethan Owen Ivan Carlos Diego Marco Pablo Omar Ravi Kenji Hans Lars Erik Frank
George Harry Edward Arthur Walter Robert Michael Steven Kevin Brian Alan Colin Dennis Gary Hector Isaac
Jonah Nathan Patrick Ryan Anton Rafael Tobias Ahmed Yusuf Luis Andre Milo Rupert""")

# Relatives and acquaintances usually take a possessive ("my aunt").
KIN = _tagged("""
mother:f father:m sister:f brother:m aunt:f uncle:m cousin grandmother:f grandfather:m son:m daughter:f
wife/wives:f husband:m niece:f nephew:m friend neighbor boss partner colleague classmate roommate""")
PROFESSIONS = _items("""
teacher doctor nurse farmer driver pilot baker student lawyer engineer artist singer writer painter waiter
manager officer captain scientist musician chef author dentist mechanic librarian gardener carpenter plumber
editor photographer soldier judge actor dancer poet sailor clerk barber tailor firefighter detective
professor architect pharmacist surgeon banker journalist reporter athlete referee umpire inspector astronaut
electrician interpreter accountant""")
OTHER_PEOPLE = _tagged("""
man/men:m woman/women:f child/children boy:m girl:f baby guest visitor stranger tourist customer player
teenager owner king:m queen:f prince:m princess:f fisherman/fishermen:m passenger traveler volunteer
shopkeeper""")

# --- animals (with the sound each one makes, where English has a verb for it) -------------------

ANIMALS = _tagged("""
dog:bark cat:purr horse:neigh cow:moo sheep/sheep:bleat goat:bleat pig:grunt bird:sing duck:quack
goose/geese:honk mouse/mice:squeak rabbit fox/foxes wolf/wolves:howl bear:growl lion:roar tiger:roar
elephant:trumpet owl:hoot frog:croak fish/fish whale dolphin monkey:chatter donkey:bray squirrel bee:buzz
butterfly spider snake:hiss turtle parrot:talk puppy:whine kitten:meow hen:cluck rooster:crow camel zebra
giraffe kangaroo penguin ant ox/oxen lamb:bleat swan crow pigeon:coo hamster lizard beetle hedgehog otter
seal shark deer/deer eagle octopus""")

# --- things, food, texts ------------------------------------------------------------------------

THINGS = _items("""
key bag box lamp chair table phone ticket umbrella camera bottle cup glass plate knife/knives fork spoon
bowl basket bucket blanket pillow candle clock watch hat coat scarf/scarves shoe boot sock shirt dress
jacket sweater glove ring necklace picture painting poster mirror brush comb pen pencil notebook envelope
parcel package toy ball kite doll puzzle guitar piano drum violin radio computer laptop keyboard printer
battery ladder hammer shovel rope wheel bicycle wallet purse suitcase backpack helmet tent flag coin gift
present towel sofa desk vase jar kettle pan pot tray stamp apron anchor axe engine iron eraser oar album
armchair earring ornament umbrella_stand alarm_clock teapot toolbox paintbrush sketchbook skateboard
surfboard microphone calculator lantern compass telescope trophy medal rug curtain cushion feather pebble
shell""")
FOODS = _items("""
apple banana orange sandwich cake cookie pie egg potato/potatoes tomato/tomatoes carrot onion lemon peach
pear plum cherry strawberry grape melon pizza biscuit muffin pancake sausage cucumber pepper mango/mangoes
avocado burger pastry doughnut olive walnut almond radish apricot omelet""")
# Mass nouns with the container that measures them ("a slice of bread").
MASS_FOODS = _tagged("""
bread:slice soup:bowl rice:bowl cheese:piece butter:block honey:jar salad:bowl pasta:plate chocolate:bar
chicken:plate jam:jar yogurt:pot porridge:bowl cereal:bowl sugar:spoonful flour:bag meat:plate spinach:bag
popcorn:bag ice_cream:scoop toast:slice cake:slice pie:slice""")
DRINKS = _tagged("""
water:glass milk:glass coffee:cup tea:cup juice:glass lemonade:glass cocoa:mug soda:can orange_juice:glass
hot_chocolate:mug""")
MEALS = _items("breakfast lunch dinner supper brunch")
TEXTS = _items("""
book letter newspaper magazine novel poem story report message note postcard recipe diary email essay
article invitation list menu sign label review speech chapter page contract receipt script guidebook
textbook manual biography""")
STORIES = _items("story joke secret riddle rumor legend fairy_tale")

# --- places -------------------------------------------------------------------------------------

# The preposition each place takes for "being there".
PLACES = _tagged("""
kitchen:in garden:in park:in library:at station:at airport:at school:at market:at museum:at office:at
hospital:at beach:on bakery:at bank:at supermarket:at cinema:at theater:at stadium:at zoo:at church:at
hotel:at harbor:at village:in forest:in square:in classroom:in garage:in attic:in basement:in yard:in
playground:in cafe:at restaurant:at pharmacy:at gym:at farm:on island:on bridge:on platform:on hill:on
lake:by river:by field:in meadow:in valley:in castle:in palace:in cottage:in barn:in factory:at
university:at college:at hall:in gallery:at studio:in bookshop:at post_office:at town_hall:at
swimming_pool:at bus_stop:at orchard:in vineyard:in lighthouse:at campsite:at concert_hall:at""")
OPENING_PLACES = _items("""
library museum bank bakery supermarket cinema pharmacy cafe restaurant gym post_office gallery zoo market
bookshop swimming_pool theater""")
OPEN_AREAS = _items("park forest field square meadow village valley market garden beach orchard")
CITIES = _items("""
London Paris Berlin Madrid Rome Vienna Prague Dublin Lisbon Athens Oslo Stockholm Helsinki Warsaw Budapest
Amsterdam Brussels Zurich Geneva Munich Hamburg Milan Venice Naples Florence Barcelona Seville Edinburgh
Glasgow Manchester Liverpool Boston Chicago Denver Seattle Houston Dallas Miami Atlanta Toronto Montreal
Vancouver Sydney Melbourne Auckland Tokyo Osaka Kyoto Seoul Beijing Shanghai Delhi Mumbai Cairo Nairobi
Lagos Lima Santiago Havana New_York San_Francisco Los_Angeles Cape_Town Istanbul Moscow Bangkok Singapore
Manila Dubai Copenhagen Bristol Oxford Cambridge Phoenix Portland Ottawa Quebec""")
SURFACES = _items("table desk shelf bed sofa chair bench counter piano stove windowsill doorstep")
CONTAINERS = _items("drawer cupboard box fridge bag pocket basket car closet suitcase oven")

# --- time ---------------------------------------------------------------------------------------

DAYS = _items("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
MONTHS = _items("January February March April May June July August September October November December")
SEASONS = _items("spring summer autumn winter")
PARTS_OF_DAY = _items("morning afternoon evening night")
UNITS = _items("minute hour day week month year")
PAST_TIMES = _items("""
yesterday last_night this_morning earlier_today the_day_before_yesterday a_long_time_ago yesterday_morning
yesterday_afternoon last_weekend the_other_day once""")
FUTURE_TIMES = _items("""
tomorrow tonight soon later_today the_day_after_tomorrow this_evening this_weekend tomorrow_morning
next_weekend one_day""")
HABITUAL_TIMES = _items("""
every_day every_morning every_evening every_week every_summer every_winter at_night in_the_morning
in_the_afternoon in_the_evening on_weekends twice_a_week once_a_month after_work before_breakfast
after_lunch after_school on_holidays most_days""")
NOW_TIMES = _items("""
right_now at_the_moment today this_morning this_afternoon this_evening tonight this_week at_this_very_moment""")
SO_FAR_TIMES = _items("this_week this_year today recently lately so_far this_month twice three_times many_times")
WHILE_TIMES = _items("""
all_morning all_day all_afternoon all_evening all_night at_that_moment yesterday_afternoon last_night""")

# --- adjectives and adverbs ---------------------------------------------------------------------

PERSON_ADJ = _items("""
happy sad tired hungry angry busy kind friendly quiet young old clever brave proud lucky polite honest
nervous calm patient curious famous funny serious shy strong gentle cheerful lazy careful excited upset
lonely generous sleepy thirsty worried elderly eager energetic anxious ambitious grateful confident cautious
helpful modest rude silly wise wealthy poor tall handsome clumsy bored surprised confused delighted relieved
jealous stubborn sensible thoughtful talented annoyed impatient exhausted independent optimistic""")
PREDICATIVE_ADJ = _items("afraid alone asleep awake ready sorry glad sure unwell")
THING_ADJ = _items("""
big small old new red blue green yellow white black brown gray pink purple orange heavy light cheap
expensive empty full clean dirty broken wooden round square soft hard warm cold tiny huge long short bright
dark shiny strange beautiful ugly lovely pretty simple useful unusual ordinary ancient enormous elegant
interesting important excellent odd fancy plain fragile sturdy rusty dusty shabby spare tidy modern precious
valuable smooth rough sharp loose tight comfortable colorful antique electric unique favorite""")
FOOD_ADJ = _items("""
fresh delicious sweet sour salty spicy ripe warm cold tasty crunchy juicy homemade bitter creamy crispy hot
frozen raw organic rotten stale soft large small green enormous excellent""")
PLACE_ADJ = _items("""
busy quiet crowded empty noisy peaceful old modern huge tiny famous beautiful sunny dark narrow wide ancient
lovely small new charming cozy clean dirty local public nearby main historic abandoned enormous open elegant
ugly""")
ANIMAL_ADJ = _items("""
big small little old young friendly hungry tired lazy noisy playful fat furry wild tame shy curious clever
brave fierce gentle brown black white gray spotted striped sleepy angry tiny huge happy injured orange
elderly adorable""")
EXCLAIM_ADJ = _items("""
lovely beautiful strange wonderful charming huge tiny awful funny fantastic terrible interesting enormous
elegant impressive odd peculiar gorgeous silly lucky curious remarkable splendid marvelous unusual
extraordinary""")
TEXT_ADJ = _items("""
long short strange interesting important old new funny sad beautiful simple famous boring brief clever
lovely serious secret handwritten official urgent anonymous excellent awful wonderful""")
MEAL_ADJ = _items("quick late early light big delicious huge lovely simple enormous")
DRINK_ADJ = _items("hot cold warm fresh sweet strong iced bitter cool")
IMPERATIVE_ADJ = _items("careful quiet patient polite kind brave calm honest ready gentle sensible helpful nice")
WEATHER_ADJ = _items("sunny cloudy windy foggy rainy cold warm hot freezing chilly mild humid stormy")
DEGREE = _items("very really quite rather extremely so too a_bit fairly incredibly terribly slightly unusually")
MANNER = _items("""
quickly slowly carefully quietly loudly happily sadly calmly eagerly patiently politely gently softly easily
proudly nervously silently cheerfully badly well early late again together alone angrily anxiously bravely
brightly casually clearly correctly honestly kindly lazily neatly openly perfectly rapidly safely secretly
seriously smoothly steadily strangely swiftly warmly wisely thoughtfully briefly boldly""")
FREQUENCY = _items("always usually often sometimes rarely never seldom occasionally normally generally")
OPENERS = _items("""
Luckily Unfortunately Fortunately Surprisingly Sadly Honestly Apparently Naturally Of_course Perhaps Clearly
Frankly Actually In_fact Thankfully Strangely Obviously Interestingly""")

# --- verbs --------------------------------------------------------------------------------------

PERSON_INTRANSITIVE = _items("""
arrive laugh smile sleep wait rest sing dance swim run shout whisper work travel study cook read write
listen relax complain sneeze cough yawn jump fall sit stand leave win lose hurry agree knock whistle shiver
nod jog stretch exercise recover retire succeed apologize celebrate argue speak play practice paint draw hum
cry sigh blush frown wave giggle stumble cheer clap hide wander worry improve disappear volunteer vote pray
dream shop wake_up sit_down stand_up give_up calm_down show_up grow_up go_out come_back slow_down stay_up
look_around move_away settle_down cheer_up sleep_in check_in eat_out dress_up""")
ANIMAL_INTRANSITIVE = _items("sleep rest hide eat wait play disappear escape stay wander")
THING_INTRANSITIVE = _items("fall disappear break vanish")
# Verbs of motion, followed by a destination ("walked to the station").
MOTION = _items("go walk drive run ride fly travel hurry return come move cycle sail rush race jog")
# Transitive verbs, each with the object categories it takes (see the module docstring).
TRANSITIVE = _tagged("""
buy:tfd find:tpaxl carry:tfa lose:tx sell:tfa borrow:tx drop:tf bring:tfdx take:tfx need:tfdx want:tfdx
like:tfdpalm choose:tfx hide:tfx keep:tfxa move:t check:tx forget:tx lend:tx return:tx pack:tf wrap:tf
hold:tfa love:tfdpalxs steal:tfx clean:t examine:tfxa describe:tpla notice:tpa order:tfdm deliver:tx use:t
admire:tpl collect:t compare:tx measure:t share:tfdxs pick_up:tfx put_down:tf throw_away:tfx look_for:tpxa
eat:fm cook:fm taste:fd prepare:fm finish:fdxm serve:fdm smell:f make:fdm try:fd drink:d pour:d spill:d
read:xs write:xs send:tx print:x sign:x translate:x edit:x publish:x copy:x receive:tx mail:x review:x
rewrite:x meet:p call:p help:p visit:pl thank:p follow:pa invite:p remember:plxs teach:p watch:pa greet:p
hug:p miss:pl recognize:pa trust:p warn:p join:p interview:p encourage:p forgive:p surprise:p comfort:p
ignore:p hire:p pay:p see:tpal hear:pas tell:s wait_for:p look_after:pa talk_to:p listen_to:pa look_at:tpal
leave:l reach:l explore:l enter:l search:l photograph:pla paint:tpl draw:tpa tour:l feed:a chase:a catch:a
wash:ta brush:a adopt:a rescue:pa train:a frighten:pa skip:m have:fdm enjoy:fdml build:tl""")
ANIMAL_TRANSITIVE = _tagged("chase:at eat:f find:t catch:a carry:t follow:p watch:pa")
# Verbs not used in progressive tenses.
STATIVE = set(_items("""
be have know like love want need seem look feel sound cost prefer hate understand believe taste smell"""))
# Verbs taking two objects: "gave Anna a book" / "gave a book to Anna" (or "for" when marked).
DITRANSITIVE = _tagged("""
give:tfx send:tx lend:t show:tx hand:tfx offer:tfd sell:tf pass:tf throw:t read:x write:x tell:s bring:tfd
buy:tf@ make:f@ bake:f@ cook:f@ find:t@""")
INFINITIVE_TAKERS = _items("want need hope plan try decide forget promise learn like love prefer refuse agree offer")
GERUND_TAKERS = _items("enjoy love like hate finish stop avoid imagine practice keep")
REPORT_VERBS = _items("say think believe know hope feel hear notice remember explain admit promise")
LINKING = _items("look seem feel sound")
SPEECH_VERBS = {".": _items("said replied explained whispered added announced admitted insisted answered"),
                "?": _items("asked wondered"), "!": _items("shouted cried called")}
MODALS = _items("can could should might must would may")

