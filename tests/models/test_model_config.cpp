// Model config loading: every shipped file loads and round-trips; bad configs fail with messages
// that name the file, the field and the fix.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "../common/test_util.hpp"
#include "model_config.hpp"
#include "moejit/error.hpp"

namespace moejit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using test::error_of;

json valid_moe_json() {
  return json::parse(R"({
    "name": "t", "layers": 4, "d_model": 256, "heads": 4, "head_dim": 64, "d_ffn": 704,
    "vocab": 256, "seq_len": 128,
    "moe": {"experts": 8, "top_k": 2, "d_expert": 64, "shared_experts": 1, "d_shared": 128,
            "dense_layers": [0], "router": {"score": "softmax", "renormalize": false}}
  })");
}

TEST(ModelConfig, ShippedConfigsLoadValidateAndRoundTrip) {
  const auto names = list_model_configs();
  for (const char* expected : {"moe-2b", "moe-2b-alt", "dense-2b", "moe-7b", "dense-7b", "tiny-dense", "tiny-moe-r10",
                               "tiny-moe-r20", "tiny-moe-r40", "mixtral-8x7b", "deepseekmoe-16b", "olmoe-1b-7b",
                               "qwen3-30b-a3b", "micro-dsv3", "deepseekmoe-16b-model", "olmoe-1b-7b-model"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  }
  EXPECT_NE(std::find(names.begin(), names.end(), std::string(kDefaultSmallConfig)), names.end());
  for (const auto& name : names) {
    const ModelConfig c = find_model_config(name);
    EXPECT_EQ(c.name, name) << "the file name and the \"name\" field must agree";
    EXPECT_EQ(model_config_from_json(to_json(c), "roundtrip"), c) << name;
  }
}

TEST(ModelConfig, PaperLayoutIsOneDenseLayerThenMoe) {
  const ModelConfig c = find_model_config("moe-2b");
  ASSERT_TRUE(c.is_moe());
  EXPECT_TRUE(c.is_dense_layer(0));
  for (int64_t l = 1; l < c.layers; ++l) EXPECT_FALSE(c.is_dense_layer(l)) << l;
  EXPECT_EQ(c.moe_layer_count(), 15);
  EXPECT_FALSE(c.moe->router.renormalize);
  EXPECT_EQ(c.moe->router.score, "softmax");
  EXPECT_EQ(c.positions, "alibi");
}

TEST(ModelConfig, PublicShapesAreMoeLayers) {
  const ModelConfig c = find_model_config("deepseekmoe-16b");
  EXPECT_EQ(c.scope, ModelScope::moe_layer);
  EXPECT_EQ(c.moe->shared_experts, 2);
  EXPECT_EQ(c.moe->shared_width(), 2 * 1408);
  EXPECT_TRUE(find_model_config("qwen3-30b-a3b").moe->router.renormalize);
}

TEST(ModelConfig, DefaultsApplyWhenOptionalFieldsAreAbsent) {
  json j = valid_moe_json();
  j["moe"].erase("router");
  const ModelConfig c = model_config_from_json(j, "t.json");
  EXPECT_EQ(c.moe->router, RouterConfig{});
  EXPECT_FALSE(c.tie_embeddings);
}

TEST(ModelConfig, HeadsTimesHeadDimMustEqualDModel) {
  json j = valid_moe_json();
  j["heads"] = 3;
  const std::string msg = error_of([&] { model_config_from_json(j, "bad.json"); });
  EXPECT_NE(msg.find("bad.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("heads * head_dim = 3 * 64 = 192 must equal d_model = 256"), std::string::npos) << msg;
}

TEST(ModelConfig, TopKMustNotExceedExperts) {
  json j = valid_moe_json();
  j["moe"]["top_k"] = 9;
  const std::string msg = error_of([&] { model_config_from_json(j, "bad.json"); });
  EXPECT_NE(msg.find("moe.top_k = 9 exceeds moe.experts = 8"), std::string::npos) << msg;
}

TEST(ModelConfig, UnknownKeysAreRejectedWithTheKnownOnes) {
  json j = valid_moe_json();
  j["moe"]["expert"] = 8;  // a typo for "experts"
  std::string msg = error_of([&] { model_config_from_json(j, "typo.json"); });
  EXPECT_NE(msg.find("typo.json: unknown key 'expert' in moe"), std::string::npos) << msg;
  EXPECT_NE(msg.find("experts"), std::string::npos) << msg;
  j = valid_moe_json();
  j["moe"]["router"]["renormalise"] = true;
  msg = error_of([&] { model_config_from_json(j, "typo.json"); });
  EXPECT_NE(msg.find("unknown key 'renormalise' in moe.router"), std::string::npos) << msg;
}

TEST(ModelConfig, MissingFieldsAndWrongTypesAreNamed) {
  for (const char* field : {"name", "d_model", "layers", "heads", "head_dim", "vocab", "seq_len"}) {
    json j = valid_moe_json();
    j.erase(field);
    const std::string msg = error_of([&] { model_config_from_json(j, "m.json"); });
    EXPECT_NE(msg.find(std::string("missing required field '") + field + "'"), std::string::npos) << msg;
  }
  json j = valid_moe_json();
  j["moe"].erase("d_expert");
  EXPECT_NE(error_of([&] { model_config_from_json(j, "m.json"); }).find("missing required field 'moe.d_expert'"),
            std::string::npos);
  j = valid_moe_json();
  j["layers"] = "4";
  EXPECT_NE(error_of([&] { model_config_from_json(j, "m.json"); }).find("layers must be an integer"),
            std::string::npos);
  j = valid_moe_json();
  j["d_model"] = 256.5;
  EXPECT_NE(error_of([&] { model_config_from_json(j, "m.json"); }).find("d_model must be an integer"),
            std::string::npos);
}

TEST(ModelConfig, CrossFieldRules) {
  auto msg_for = [](auto edit) {
    json j = valid_moe_json();
    edit(j);
    return error_of([&] { model_config_from_json(j, "x.json"); });
  };
  EXPECT_NE(msg_for([](json& j) { j["moe"]["dense_layers"] = {4}; }).find("outside [0, layers = 4)"),
            std::string::npos);
  EXPECT_NE(msg_for([](json& j) { j["moe"]["dense_layers"] = {0, 0}; }).find("twice"), std::string::npos);
  EXPECT_NE(msg_for([](json& j) {
              j["moe"]["dense_layers"] = {0, 1, 2, 3};
            }).find("drop the \"moe\" object"),
            std::string::npos);
  EXPECT_NE(msg_for([](json& j) { j.erase("d_ffn"); }).find("d_ffn"), std::string::npos);
  EXPECT_NE(msg_for([](json& j) { j["moe"]["d_shared"] = 0; }).find("both be 0"), std::string::npos);
  EXPECT_NE(msg_for([](json& j) { j["moe"]["router"]["score"] = "relu"; }).find("\"softmax\" or \"sigmoid\""),
            std::string::npos);
  EXPECT_NE(msg_for([](json& j) { j["moe"]["router"]["groups"] = 3; }).find("divide moe.experts"), std::string::npos);
  EXPECT_NE(msg_for([](json& j) { j["positions"] = "learned"; }).find("positions"), std::string::npos);
  EXPECT_NE(msg_for([](json& j) { j["scope"] = "layer"; }).find("scope must be"), std::string::npos);
  EXPECT_NE(msg_for([](json& j) { j["scope"] = "moe_layer"; }).find("does not apply to scope \"moe_layer\""),
            std::string::npos);
  EXPECT_NE(msg_for([](json& j) { j["layers"] = 0; }).find("layers must be positive"), std::string::npos);
}

class ModelConfigFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moejit_models_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    unsetenv("MOEJIT_MODELS_DIR");
    fs::remove_all(dir_);
  }
  fs::path write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return dir_ / name;
  }
  fs::path dir_;
};

TEST_F(ModelConfigFiles, MalformedJsonNamesTheFileAndLine) {
  const fs::path p = write("broken.json", "{\n  \"name\": \"x\",\n  \"layers\": 4,,\n}\n");
  const std::string msg = error_of([&] { load_model_config(p); });
  EXPECT_NE(msg.find(p.string() + ":3:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("malformed JSON"), std::string::npos) << msg;
}

TEST_F(ModelConfigFiles, EnvironmentOverridesTheModelsDir) {
  json j = valid_moe_json();
  j["name"] = "mine";
  write("mine.json", j.dump());
  setenv("MOEJIT_MODELS_DIR", dir_.c_str(), 1);
  EXPECT_EQ(models_dir(), dir_);
  EXPECT_EQ(list_model_configs(), std::vector<std::string>{"mine"});
  EXPECT_EQ(find_model_config("mine").layers, 4);
  const std::string msg = error_of([] { find_model_config("moe-2b"); });
  EXPECT_NE(msg.find("no model config named 'moe-2b'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("known: mine"), std::string::npos) << msg;
}

TEST_F(ModelConfigFiles, PathsLoadDirectly) {
  const fs::path p = write("direct.json", valid_moe_json().dump());
  EXPECT_EQ(find_model_config(p.string()).d_model, 256);
  EXPECT_NE(error_of([&] { load_model_config(dir_ / "absent.json"); }).find("no such model config file"),
            std::string::npos);
}

}  // namespace
}  // namespace moejit
