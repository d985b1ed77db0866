# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: jitp_template
short_description: The fleet's AWS IoT just-in-time provisioning (JITP) template
version_added: 1.0.0
author:
  - iotfleet.aws developers (@iotfleet)
description:
  - Builds the template body that AWS IoT runs when a device presents, on its first connect, a
    certificate issued by the fleet CA that is not registered yet (the CA's C(registrationConfig),
    with auto-registration on).
  - 'The template: the thing is named after the certificate''s CN (C(AWS::IoT::Certificate::CommonName),
    the thing name the collection puts there), the certificate (C(AWS::IoT::Certificate::Id)) is
    registered with status C(ACTIVE), the policy O(_input) is attached to it and the certificate to
    the thing; optionally a thing type and attributes.'
  - Per-device attributes can only come from the certificate's subject (O(subject_attributes)); a
    JITP template is the same for every device.
  - The result is a dict; the C(iotfleet.aws.ca) role passes it to M(iotfleet.aws.iot_ca_certificate)
    as C(registration_config.template_body).
options:
  _input:
    description: The name of the IoT policy every provisioned certificate gets (it must exist when a device first connects).
    type: str
    required: true
  thing_type:
    description: Thing type of every provisioned thing (it must exist). Omit, or V(null), for none.
    type: str
  attributes:
    description:
      - Attributes every provisioned thing gets (the same for all), name to value.
      - Values are strings (numbers and booleans are turned into strings).
    type: dict
    default: {}
  subject_attributes:
    description:
      - Attributes taken from the device certificate, attribute name to a JITP certificate parameter
        (C(CommonName), C(Country), C(Organization), C(OrganizationalUnit), C(DistinguishedNameQualifier),
        C(StateName), C(SerialNumber), C(Id), with or without the C(AWS::IoT::Certificate::) prefix).
      - AWS refuses to provision a device whose certificate lacks a subject field the template uses.
        Certificates the collection issues carry only the CN; C(Id) (the certificate id) is always known.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: The template of the fleet policy, things named after the certificate CN
  ansible.builtin.set_fact:
    template: "{{ 'iotfleet-device' | iotfleet.aws.jitp_template }}"

- name: With a thing type, a fixed attribute and the certificate id as an attribute
  ansible.builtin.set_fact:
    template: >-
      {{ 'iotfleet-device' | iotfleet.aws.jitp_template(thing_type='pi-zero',
           attributes={'fleet': 'kitchen'}, subject_attributes={'certificate': 'Id'}) }}
"""

RETURN = r"""
_value:
  description: The JITP template body (C(Parameters), C(Resources) with a thing, a certificate and a policy).
  type: dict
"""

import json
import re

from ansible.errors import AnsibleFilterError

# AWS IoT's own patterns (the same as the collection's module_utils; a filter imports no AWS code)
_POLICY_NAME = re.compile(r"^[\w+=,.@-]{1,128}$", re.ASCII)
_THING_TYPE = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
_ATTRIBUTE_NAME = re.compile(r"^[a-zA-Z0-9_.,@/:#-]{1,128}$")
_ATTRIBUTE_VALUE = re.compile(r"^[a-zA-Z0-9_.,@/:#=\[\]-]{1,800}$")
MAX_ATTRIBUTES = 50
# RegistrationConfig.templateBody: at most 10,240 characters
MAX_BODY = 10240

PREFIX = "AWS::IoT::Certificate::"
# the parameters AWS IoT passes to a JITP template (from the device certificate)
CERTIFICATE_PARAMETERS = (
    "CommonName",
    "Country",
    "Organization",
    "OrganizationalUnit",
    "DistinguishedNameQualifier",
    "StateName",
    "SerialNumber",
    "Id",
)


def _parameter(value, name):
    field = value[len(PREFIX):] if isinstance(value, str) and value.startswith(PREFIX) else value
    if field not in CERTIFICATE_PARAMETERS:
        raise AnsibleFilterError(
            f"jitp_template: subject_attributes.{name} is {value!r}; use one of {', '.join(CERTIFICATE_PARAMETERS)}"
        )
    return PREFIX + field


def _attribute_name(name):
    if not isinstance(name, str) or not _ATTRIBUTE_NAME.match(name):
        raise AnsibleFilterError(
            f"jitp_template: invalid thing attribute name {name!r} (1-128 characters from [a-zA-Z0-9_.,@/:#-])"
        )
    return name


def jitp_template(policy_name, thing_type=None, attributes=None, subject_attributes=None):
    """The JITP template body (a dict) for the fleet; AnsibleFilterError on any invalid input."""
    if not isinstance(policy_name, str) or not _POLICY_NAME.match(policy_name):
        raise AnsibleFilterError(
            f"jitp_template: invalid policy name {policy_name!r} (1-128 characters from [a-zA-Z0-9_+=,.@-])"
        )
    if thing_type is not None and thing_type != "" and (
        not isinstance(thing_type, str) or not _THING_TYPE.match(thing_type)
    ):
        raise AnsibleFilterError(f"jitp_template: invalid thing type {thing_type!r} (1-128 characters from [a-zA-Z0-9:_-])")
    for what, value in (("attributes", attributes), ("subject_attributes", subject_attributes)):
        if value is not None and not isinstance(value, dict):
            raise AnsibleFilterError(f"jitp_template: {what} must be a dict, got {type(value).__name__}")
    attributes = attributes or {}
    subject_attributes = subject_attributes or {}

    parameters = {PREFIX + "CommonName": {"Type": "String"}, PREFIX + "Id": {"Type": "String"}}
    payload = {}
    for name, value in attributes.items():
        _attribute_name(name)
        if isinstance(value, bool):
            value = str(value).lower()
        if not isinstance(value, (str, int, float)) or not _ATTRIBUTE_VALUE.match(str(value)):
            raise AnsibleFilterError(
                f"jitp_template: invalid value for thing attribute {name!r}: {value!r} "
                r"(1-800 characters from [a-zA-Z0-9_.,@/:#=[]-], no spaces)"
            )
        payload[name] = str(value)
    for name, value in subject_attributes.items():
        _attribute_name(name)
        if name in payload:
            raise AnsibleFilterError(f"jitp_template: attribute {name!r} is in both attributes and subject_attributes")
        parameter = _parameter(value, name)
        parameters[parameter] = {"Type": "String"}
        payload[name] = {"Ref": parameter}
    if len(payload) > MAX_ATTRIBUTES:
        raise AnsibleFilterError(f"jitp_template: a thing can have at most {MAX_ATTRIBUTES} attributes, {len(payload)} were given")

    thing = {"ThingName": {"Ref": PREFIX + "CommonName"}}
    # a thing that exists already (made by registration api, or a device with a new certificate):
    # attributes are merged (an operator's stay), a declared type replaces the old one
    overrides = {}
    if payload:
        thing["AttributePayload"] = payload
        overrides["AttributePayload"] = "MERGE"
    if thing_type:
        thing["ThingTypeName"] = thing_type
        overrides["ThingTypeName"] = "REPLACE"
    thing_resource = {"Type": "AWS::IoT::Thing", "Properties": thing}
    if overrides:
        thing_resource["OverrideSettings"] = overrides
    body = {
        "Parameters": parameters,
        "Resources": {
            "thing": thing_resource,
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": PREFIX + "Id"}, "Status": "ACTIVE"},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": policy_name}},
        },
    }
    size = len(json.dumps(body, sort_keys=True, separators=(",", ":")))
    if size > MAX_BODY:
        raise AnsibleFilterError(f"jitp_template: the template is {size} characters; AWS IoT allows {MAX_BODY}")
    return body


class FilterModule:
    def filters(self):
        return {"jitp_template": jitp_template}
