#include "eval/train_words.h"

#include <sstream>

namespace glimpse::eval {
namespace {

std::vector<std::string> split_words(const char* text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

}  // namespace

const std::vector<std::string>& train_given_names() {
  static const std::vector<std::string> v = split_words(
      "Ines Tomasz Amara Kenji Lucia Farid Greta Oskar Nadia Emeka Sofia Ravi Helga Mateo "
      "Yusuf Ingrid Pablo Leila Dmitri Chiara Kwame Astrid Hugo Mei Anders Zainab Tobias "
      "Elif Rafael Noor Sven Priya Jonas Camila Tariq Freya Milan Aiko Bruno Selma");
  return v;
}

const std::vector<std::string>& train_family_names() {
  static const std::vector<std::string> v = split_words(
      "Varga Okafor Lindqvist Moreau Tanaka Castillo Novak Haddad Brennan Kowalski Mensah "
      "Petrov Sato Fischer Alvarez Nkemelu Rossi Dubois Horvat Jensen Quispe Abara Keller "
      "Marin Yilmaz Olsen Conti Adeyemi Larsen Ferreira Bauer Ortega Nakamura Silva Wagner "
      "Costa Hansen Ibarra Laurent Szabo");
  return v;
}

const std::vector<std::string>& train_shades() {
  static const std::vector<std::string> v = split_words(
      "crimson teal amber ivory maroon scarlet olive navy indigo beige cobalt turquoise lilac "
      "mauve ochre khaki charcoal emerald magenta cream lavender mint peach ruby sapphire "
      "tan violet bronze coral pearl");
  return v;
}

const std::vector<std::string>& train_objects() {
  static const std::vector<std::string> v = split_words(
      "stapler toaster kayak hammock thermos easel ukulele skateboard typewriter microscope "
      "telescope accordion briefcase bookshelf doormat saucepan colander wheelbarrow "
      "hairdryer projector metronome globe backpack sundial birdhouse hourglass cushion vase "
      "lampshade suitcase harmonica kite trombone xylophone padlock thermostat binoculars "
      "canoe sled scooter");
  return v;
}

const std::vector<std::string>& train_number_words() {
  static const std::vector<std::string> v = split_words(
      "two three four five six seven eight nine ten eleven twelve");
  return v;
}

const std::vector<std::string>& train_workshops() {
  static const std::vector<std::string> v = split_words(
      "pottery welding calligraphy beekeeping origami fencing sailing glassblowing bookbinding "
      "archery knitting woodcarving juggling embroidery falconry cheesemaking");
  return v;
}

const std::vector<std::string>& train_weekdays() {
  static const std::vector<std::string> v = split_words(
      "Monday Tuesday Wednesday Thursday Friday Saturday Sunday");
  return v;
}

const std::vector<std::string>& train_rooms() {
  static const std::vector<std::string> v = split_words(
      "pantry attic basement greenhouse workshop laundry porch hallway studio garage loft "
      "conservatory");
  return v;
}

const std::vector<std::string>& train_config_sections() {
  static const std::vector<std::string> v = split_words(
      "uploader scheduler thumbnailer indexer notifier archiver resizer spooler crawler "
      "mailer renderer collector");
  return v;
}

const std::vector<std::string>& train_config_keys() {
  static const std::vector<std::string> v = split_words(
      "retry_limit spool_dir batch_window max_workers idle_timeout log_level chunk_kib "
      "queue_depth backoff_ms verify_checksums keep_days nice_level poll_seconds "
      "compress_level cache_mib");
  return v;
}

}  // namespace glimpse::eval
