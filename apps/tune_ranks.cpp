#include "tune_ranks.hpp"

#include <map>
#include <nlohmann/json.hpp>

#include "moejit/error.hpp"

namespace moejit::cli {
namespace {
using nlohmann::json;

std::string decisions_json(const std::vector<Decision>& decisions) {
  json all = json::array();
  for (const Decision& d : decisions) all.push_back(to_json(d));
  return all.dump();
}

std::vector<Decision> decisions_from(const std::string& text, const std::string& where) {
  std::vector<Decision> out;
  for (const json& d : json::parse(text)) out.push_back(decision_from_json(d, where));
  return out;
}

// The decision `store` answers with for each identity of `tuned` (those it holds).
std::vector<Decision> answers(const TuningStore& store, const std::vector<Decision>& tuned) {
  std::map<Family, std::vector<Decision>> stored;
  std::vector<Decision> out;
  for (const Decision& d : tuned) {
    auto [family, fresh] = stored.try_emplace(d.family());
    if (fresh) family->second = store.load(d.family());
    for (const Decision& s : family->second)
      if (s.identity() == d.identity()) {
        out.push_back(s);
        break;
      }
  }
  return out;
}

// One line per problem: "identity config" (what a lookup would run).
std::string answers_text(const std::vector<Decision>& decisions) {
  std::string text;
  for (const Decision& d : decisions) text += d.identity() + " " + d.config.to_string() + "\n";
  return text;
}

}  // namespace

std::vector<StepCall> share_of_calls(const std::vector<StepCall>& calls, int rank, int ranks) {
  std::vector<StepCall> share;
  for (size_t i = size_t(rank); i < calls.size(); i += size_t(ranks)) share.push_back(calls[i]);
  return share;
}

void check_same_device(runtime::Communicator& comm, const std::string& device) {
  const auto devices = comm.allgather(device);
  for (size_t r = 1; r < devices.size(); ++r)
    if (devices[r] != devices[0])
      throw Error("rank " + std::to_string(r) + " tunes on " + devices[r] + ", rank 0 on " + devices[0] +
                  ": the ranks of `moejit tune` under mpirun split one problem list, so they must run on the same "
                  "kind of device; tune on each kind of machine separately (one mpirun per kind)");
}

int merge_over_ranks(runtime::Communicator& comm, TuningStore& store, const std::vector<Decision>& mine,
                     const std::string& since) {
  std::vector<Decision> all;
  const auto per_rank = comm.allgather(decisions_json(mine));
  for (size_t r = 0; r < per_rank.size(); ++r)
    for (Decision& d : decisions_from(per_rank[r], "rank " + std::to_string(r) + "'s decisions"))
      all.push_back(std::move(d));
  // Rank 0 first: where the ranks share one cache directory the others then find its answers there.
  std::string root_answers;
  if (comm.root()) {
    store.record(all, TuningStore::Policy::replace, since);
    root_answers = decisions_json(answers(store, all));
  }
  const std::vector<Decision> want = decisions_from(comm.allgather(root_answers)[0], "rank 0's tuning cache");
  if (!comm.root() && answers_text(answers(store, all)) != answers_text(want))
    store.record(want, TuningStore::Policy::replace);
  const auto held = comm.allgather(answers_text(answers(store, all)));
  for (size_t r = 1; r < held.size(); ++r)
    if (held[r] != held[0])
      throw Error("after the merge rank " + std::to_string(r) +
                  "'s tuning cache answers the tuned problems "
                  "differently from rank 0's (a concurrent tuning run?): run `moejit tune` again, or `moejit cache "
                  "export` rank 0's decisions and import them on every machine");
  return int(all.size());
}

}  // namespace moejit::cli
