"""`--junit FILE`: the results as JUnit XML, which CI systems render as a test report.

One <testsuite> named after the plugin; each case a <testcase> with a <failure> or <skipped>
child when it did not pass.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from horae_conformance.results import CaseResult, Status, Summary
from horae_sdk.spec import PluginSpec


def junit_tree(spec: PluginSpec, results: Sequence[CaseResult]) -> ET.ElementTree:
    summary = Summary.of(results)
    suite = ET.Element(
        "testsuite",
        name=f"horae-conformance {spec.kind} {spec.name}",
        tests=str(summary.total),
        failures=str(summary.failed),
        errors="0",
        skipped=str(summary.skipped),
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="command", value=" ".join(spec.argv))
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"horae-conformance.{spec.kind}.{spec.name}",
            name=result.name,
            time=f"{result.seconds:.3f}",
        )
        if result.status == Status.FAILED:
            ET.SubElement(case, "failure", message=result.reason).text = result.reason
        elif result.status == Status.SKIPPED:
            ET.SubElement(case, "skipped", message=result.reason)
    ET.indent(suite)
    return ET.ElementTree(suite)


def write_junit(path: str, spec: PluginSpec, results: Sequence[CaseResult]) -> None:
    junit_tree(spec, results).write(path, encoding="utf-8", xml_declaration=True)
