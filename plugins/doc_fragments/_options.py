# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the iotfleet.aws collection: no compatibility promise outside it.


class ModuleDocFragment:
    """Option blocks that several modules share (use ``iotfleet.aws._options.<section>``).

    A module that declares one of these options itself only replaces the keys it gives (for
    example its own ``description``); the rest comes from here.
    """

    DOCUMENTATION = r"""
options: {}
"""

    # a device certificate: path or PEM content (iot_certificate)
    CERTIFICATE = r"""
options:
  certificate:
    description:
      - Path to the device certificate (PEM) on the controller.
      - Mutually exclusive with O(certificate_content).
    type: path
  certificate_content:
    description:
      - The device certificate as PEM text.
      - Mutually exclusive with O(certificate).
    type: str
"""

    # the CA certificate: path or PEM content (iot_certificate, iot_ca_certificate)
    CA_CERTIFICATE = r"""
options:
  ca_certificate:
    description:
      - Path to the CA certificate (PEM) on the controller.
      - Mutually exclusive with O(ca_certificate_content).
    type: path
  ca_certificate_content:
    description:
      - The CA certificate as PEM text.
      - Mutually exclusive with O(ca_certificate).
    type: str
"""

    # the CA private key: path or PEM content, optional passphrase (iot_ca_certificate)
    CA_PRIVATE_KEY = r"""
options:
  ca_private_key:
    description:
      - Path to the CA private key (PEM) on the controller. It must match the CA certificate.
      - A file encrypted with Ansible Vault works as is - the module's action plugin decrypts it on the
        controller with the play's vault password and passes its content in O(ca_private_key_content).
    type: path
  ca_private_key_content:
    description:
      - The CA private key as PEM text. Use a vault; the value is never logged or returned.
      - Given with O(ca_private_key), it is the content of that file, when the module cannot read the file as
        is (the action plugin sets it for an Ansible Vault file); the path then only names the key in messages.
    type: str
  ca_private_key_passphrase:
    description:
      - Passphrase of an encrypted CA private key (PEM encryption, as the C(iotfleet.aws.ca) role's
        C(ca_private_key_passphrase) makes it). Never logged.
      - A wrong passphrase fails before any AWS call, naming the key file.
    type: str
"""

    # the CA key in AWS KMS instead of a file (iot_fleet, iot_ca_certificate, fleet_ca)
    CA_KMS_KEY = r"""
options:
  ca_kms_key:
    description:
      - The fleet CA key as an AWS KMS asymmetric key (the C(iotfleet.aws.ca) role's C(iotfleet_ca_backend=kms)) -
        its key id, key ARN or alias (C(alias/...)). Every signature is a KMS C(Sign) call (MessageType
        C(DIGEST), C(ECDSA_SHA_256)); the private key never exists outside KMS.
      - The key must be C(ECC_NIST_P256) with KeyUsage C(SIGN_VERIFY), enabled, and its public key must be the
        CA certificate's; otherwise the module fails before any write, naming the key.
      - Mutually exclusive with O(ca_private_key) and O(ca_private_key_content).
    type: str
"""

    # thing and thing group attributes (iot_thing, iot_thing_group)
    THING_ATTRIBUTES = r"""
options:
  attributes:
    description:
      - Attributes (name to value). Values are stored as strings (V(true)/V(false) for booleans).
      - Up to 50 attributes. Names are 1-128 characters from C([a-zA-Z0-9_.,@/:#-]), values up to
        800 characters from C([a-zA-Z0-9_.,@/:#=[]-]) (no spaces). Invalid input fails before any call.
      - An attribute whose value is V("") (or null) is removed.
      - When not set, the attributes are left alone (unless O(purge_attributes=true)).
    type: dict
  purge_attributes:
    description:
      - When V(false), only the declared attributes are set and others are kept.
      - When V(true), attributes that are not declared in O(attributes) are removed.
    type: bool
    default: false
"""

    # the fleet's CA, controller PKI directory, managed thing group, retirement and threads
    # (iot_fleet, iot_fleet_drift)
    FLEET = r"""
options:
  ca_certificate:
    description:
      - Path on the controller to the fleet CA certificate (PEM).
    type: path
  pki_dir:
    description:
      - Directory on the controller with the per-device files (C(devices/<thing name>/)); what is
        retired moves to C(retired/<thing name>-<UTC time>/) under it, the private key destroyed.
    type: path
    required: true
  managed_thing_group:
    description:
      - The static thing group that marks the things this collection created
        (M(iotfleet.aws.iot_fleet) makes every thing it creates join it).
    type: str
    default: iotfleet-managed
  retire_certificates:
    description:
      - How a retired certificate ends - V(delete) removes it from AWS IoT; V(revoke) keeps it
        registered as REVOKED (detached from everything), for audit.
      - Default V(delete), and V(revoke) with O(registration=jitp).
      - With O(registration=jitp) it is always V(revoke) (V(delete) is ignored, with a warning) - a deleted
        certificate of a CA with auto-registration registers itself again on the device's next connect, so a
        stolen device would come back.
    type: str
    choices: [delete, revoke]
  workers:
    description: Threads that work on devices at once.
    type: int
    default: 8
"""
