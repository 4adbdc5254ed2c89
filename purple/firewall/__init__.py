"""The firewall: one pipeline for every detector, around an app's LLM calls and as an OpenAI-compatible proxy.

from purple.firewall import Firewall, wrap
firewall = Firewall("chatbot")                 # a preset, a YAML policy file, or a Policy
result = firewall.scan(Message("user", text))  # result.decision: allow / human_review / block
client = wrap(OpenAI(), firewall)              # checks input before each call and output after
"""

from purple.firewall.pipeline import Firewall, FirewallResult, TraceResult, aggregate
from purple.firewall.policy import DetectorPolicy, Policy, PolicyError, load_policy, policy_from_yaml
from purple.firewall.presets import PRESETS, preset
from purple.firewall.registry import DETECTORS
from purple.firewall.wrap import FirewallBlocked, guard, wrap

__all__ = [
    "DETECTORS",
    "PRESETS",
    "DetectorPolicy",
    "Firewall",
    "FirewallBlocked",
    "FirewallResult",
    "Policy",
    "PolicyError",
    "TraceResult",
    "aggregate",
    "guard",
    "load_policy",
    "policy_from_yaml",
    "preset",
    "wrap",
]
