"""Config validation and the variant registry: bad input names the fields and the fix."""
import pytest
import torch

from core.model import ModelConfig
from variants import SIZES, build_model, get_config, get_variant, list_variants


@pytest.mark.parametrize("fields,match", [
    (dict(hidden_size=100, num_heads=3), r"hidden_size \(100\).*num_heads \(3\)"),
    (dict(hidden_size=64, embedding_size=128, num_heads=1), r"embedding_size \(128\) > hidden_size \(64\)"),
    (dict(num_layers=2, sharing="all", num_groups=3), r"num_groups \(3\).*num_layers \(2\)"),
    (dict(sharing="everything"), r"unknown value for sharing 'everything'.*all, attention, ffn, none"),
    (dict(attention="lhs"), r"Did you mean 'lsh'"),
    (dict(attention="lsh", lsh_bucket_size=300), r"lsh_bucket_size \(300\) cannot fit max_position_embeddings \(512\)"),
    (dict(reversible=True), r"reversible=True needs norm='pre'"),
    (dict(num_layers=4, num_groups=2), r"num_groups=2 with sharing='none'"),
])
def test_invalid_configs_name_their_fields(fields, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**fields)


def test_config_json_round_trip_and_derived_fields_follow_their_source():
    cfg = get_config("albert-reformer-mini")
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    bigger = cfg.replace(hidden_size=512, num_heads=8)
    assert bigger.intermediate_size == 2048 and bigger.embedding_size == 128
    with pytest.raises(ValueError, match="Did you mean 'hidden_size'"):
        cfg.replace(hiden_size=3)


def test_names_with_and_without_size_agree():
    a = get_config("roberta-lsh", size="small")
    b = get_config("roberta-lsh-small")
    assert a == b and (a.num_layers, a.hidden_size) == SIZES["small"]
    assert get_config("bert").hidden_size == 256  # default size is mini
    with pytest.raises(ValueError, match="names size 'small' but size='mini'"):
        get_config("bert-small", size="mini")


def test_unknown_variant_lists_valid_names_and_closest():
    with pytest.raises(ValueError) as err:
        build_model("roberta-lhs")
    msg = str(err.value)
    assert "Did you mean 'roberta-lsh'" in msg
    for name in list_variants():
        assert name in msg


def test_unknown_override_is_an_error():
    with pytest.raises(ValueError, match="Did you mean 'num_heads'"):
        build_model("bert", size="tiny", num_head=2)
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        build_model("bert", size="huge")


def test_variant_table():
    """The design table: each variant's defining choices, as data."""
    cfg = {v: get_config(v, size="base") for v in list_variants()}
    assert cfg["bert"].attention == "full" and cfg["bert"].norm == "post" and cfg["bert"].sentence_head
    assert cfg["albert"].embedding_size == 128 and cfg["albert"].sharing == "all" and cfg["albert"].num_groups == 1
    assert not cfg["roberta"].sentence_head and cfg["roberta"].type_vocab_size == 1
    assert cfg["reformer"].attention == "lsh" and cfg["reformer"].reversible and cfg["reformer"].ffn_chunks > 1
    assert cfg["bert-lsh"] == cfg["bert"].replace(attention="lsh")
    assert cfg["roberta-lsh"] == cfg["roberta"].replace(attention="lsh")
    ar = cfg["albert-reformer"]
    assert ar == cfg["albert"].replace(attention="lsh", norm="pre", reversible=True)
    assert get_variant("albert").data["sentence_task"] == "sop"
    assert get_variant("roberta").data["masking"] == "dynamic"


def test_all_shared_cuts_encoder_parameters_by_about_L():
    with torch.device("meta"):
        counts = build_model("albert", size="base", vocab_size=30000).parameter_counts()
    assert counts["encoder_total"] == 12 * counts["encoder_unique"]
