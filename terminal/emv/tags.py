"""The EMV / PBOC 3.0 tag dictionary: every tag the kernel reads or sends, once.

``Tag`` names the tags code refers to; ``TAG_INFO`` gives each known tag a display name
and its data format, which the DOL builder needs (format ``n`` truncates and pads on the
left, ``cn`` pads with FF on the right, everything else keeps the leftmost bytes and pads
with 00). Sources: EMV Book 3 Annex A, PBOC 3.0 tag tables (emv-reference.md §1.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Tag(IntEnum):
    """Tags referred to by name in code (terminal and software cards alike)."""

    # templates
    FCI = 0x6F
    FCI_PROPRIETARY = 0xA5
    FCI_ISSUER_DISCRETIONARY = 0xBF0C
    APPLICATION_TEMPLATE = 0x61
    RECORD_TEMPLATE = 0x70
    RESPONSE_FORMAT_1 = 0x80
    RESPONSE_FORMAT_2 = 0x77
    COMMAND_TEMPLATE = 0x83
    ISSUER_SCRIPT_BEFORE = 0x71
    ISSUER_SCRIPT_AFTER = 0x72
    ISSUER_SCRIPT_COMMAND = 0x86
    ISSUER_SCRIPT_ID = 0x9F18
    # selection
    DF_NAME = 0x84
    AID = 0x4F
    ADF_NAME_DDF = 0x9D
    APPLICATION_LABEL = 0x50
    PREFERRED_NAME = 0x9F12
    PRIORITY = 0x87
    SFI_OF_DIRECTORY = 0x88
    LANGUAGE = 0x5F2D
    ISSUER_CODE_TABLE = 0x9F11
    KERNEL_ID = 0x9F2A
    PDOL = 0x9F38
    LOG_ENTRY = 0x9F4D
    LOG_FORMAT = 0x9F4F
    LOAD_LOG_ENTRY = 0xDF4D
    LOAD_LOG_FORMAT = 0xDF4F
    # GPO and records
    AIP = 0x82
    AFL = 0x94
    CDOL1 = 0x8C
    CDOL2 = 0x8D
    DDOL = 0x9F49
    CVM_LIST = 0x8E
    PAN = 0x5A
    PAN_SEQUENCE = 0x5F34
    TRACK2 = 0x57
    CARDHOLDER_NAME = 0x5F20
    EXPIRY_DATE = 0x5F24
    EFFECTIVE_DATE = 0x5F25
    ISSUER_COUNTRY = 0x5F28
    SERVICE_CODE = 0x5F30
    USAGE_CONTROL = 0x9F07
    APP_VERSION_CARD = 0x9F08
    IAC_DEFAULT = 0x9F0D
    IAC_DENIAL = 0x9F0E
    IAC_ONLINE = 0x9F0F
    CARDHOLDER_ID_NUMBER = 0x9F61
    CARDHOLDER_ID_TYPE = 0x9F62
    # offline data authentication
    CA_KEY_INDEX = 0x8F
    ISSUER_PK_CERT = 0x90
    ISSUER_PK_REMAINDER = 0x92
    ISSUER_PK_EXPONENT = 0x9F32
    SSAD = 0x93
    ICC_PK_CERT = 0x9F46
    ICC_PK_EXPONENT = 0x9F47
    ICC_PK_REMAINDER = 0x9F48
    SDA_TAG_LIST = 0x9F4A
    SDAD = 0x9F4B
    ICC_DYNAMIC_NUMBER = 0x9F4C
    DATA_AUTH_CODE = 0x9F45
    CARD_AUTH_DATA = 0x9F69
    # cryptograms
    ATC = 0x9F36
    LAST_ONLINE_ATC = 0x9F13
    PIN_TRY_COUNTER = 0x9F17
    CRYPTOGRAM = 0x9F26
    CID = 0x9F27
    IAD = 0x9F10
    ARC = 0x8A
    ISSUER_AUTH_DATA = 0x91
    CTQ = 0x9F6C
    AVAILABLE_OFFLINE_AMOUNT = 0x9F5D
    # Electronic Cash
    EC_BALANCE = 0x9F79
    EC_BALANCE_LIMIT = 0x9F77
    EC_SINGLE_LIMIT = 0x9F78
    EC_RESET_THRESHOLD = 0x9F6D
    EC_ISSUER_AUTH_CODE = 0x9F74
    EC_TERMINAL_SUPPORT = 0x9F7A
    EC_TERMINAL_LIMIT = 0x9F7B
    APP_CURRENCY = 0x9F51
    # terminal and transaction data
    AMOUNT = 0x9F02
    AMOUNT_OTHER = 0x9F03
    TERMINAL_COUNTRY = 0x9F1A
    TVR = 0x95
    CURRENCY = 0x5F2A
    CURRENCY_EXPONENT = 0x5F36
    DATE = 0x9A
    TIME = 0x9F21
    TXN_TYPE = 0x9C
    UNPREDICTABLE_NUMBER = 0x9F37
    TERMINAL_TYPE = 0x9F35
    TERMINAL_CAPABILITIES = 0x9F33
    ADDITIONAL_CAPABILITIES = 0x9F40
    TTQ = 0x9F66
    MERCHANT_NAME = 0x9F4E
    CVM_RESULTS = 0x9F34
    TSI = 0x9B
    SM_SUPPORT = 0xDF69


@dataclass(frozen=True, slots=True)
class TagInfo:
    name: str
    fmt: str  # "n", "cn", "an", "ans", "a" or "b"


_T = TagInfo

TAG_INFO: dict[int, TagInfo] = {
    0x42: _T("Issuer Identification Number", "n"),
    0x4F: _T("Application Identifier (AID)", "b"),
    0x50: _T("Application Label", "ans"),
    0x57: _T("Track 2 Equivalent Data", "b"),
    0x5A: _T("Application PAN", "cn"),
    0x5F20: _T("Cardholder Name", "ans"),
    0x5F24: _T("Application Expiration Date", "n"),
    0x5F25: _T("Application Effective Date", "n"),
    0x5F28: _T("Issuer Country Code", "n"),
    0x5F2A: _T("Transaction Currency Code", "n"),
    0x5F2D: _T("Language Preference", "an"),
    0x5F30: _T("Service Code", "n"),
    0x5F34: _T("PAN Sequence Number", "n"),
    0x5F36: _T("Transaction Currency Exponent", "n"),
    0x61: _T("Application Template", "b"),
    0x6F: _T("FCI Template", "b"),
    0x70: _T("READ RECORD Response Template", "b"),
    0x71: _T("Issuer Script Template 1", "b"),
    0x72: _T("Issuer Script Template 2", "b"),
    0x77: _T("Response Message Template Format 2", "b"),
    0x80: _T("Response Message Template Format 1", "b"),
    0x82: _T("Application Interchange Profile", "b"),
    0x83: _T("Command Template", "b"),
    0x84: _T("Dedicated File (DF) Name", "b"),
    0x86: _T("Issuer Script Command", "b"),
    0x87: _T("Application Priority Indicator", "b"),
    0x88: _T("Short File Identifier (SFI)", "b"),
    0x8A: _T("Authorisation Response Code", "an"),
    0x8C: _T("CDOL1", "b"),
    0x8D: _T("CDOL2", "b"),
    0x8E: _T("CVM List", "b"),
    0x8F: _T("CA Public Key Index", "b"),
    0x90: _T("Issuer Public Key Certificate", "b"),
    0x91: _T("Issuer Authentication Data", "b"),
    0x92: _T("Issuer Public Key Remainder", "b"),
    0x93: _T("Signed Static Application Data", "b"),
    0x94: _T("Application File Locator", "b"),
    0x95: _T("Terminal Verification Results", "b"),
    0x9A: _T("Transaction Date", "n"),
    0x9B: _T("Transaction Status Information", "b"),
    0x9C: _T("Transaction Type", "n"),
    0x9D: _T("DDF Name", "b"),
    0xA5: _T("FCI Proprietary Template", "b"),
    0x9F02: _T("Amount, Authorised", "n"),
    0x9F03: _T("Amount, Other", "n"),
    0x9F06: _T("AID (terminal)", "b"),
    0x9F07: _T("Application Usage Control", "b"),
    0x9F08: _T("Application Version Number (card)", "b"),
    0x9F09: _T("Application Version Number (terminal)", "b"),
    0x9F0D: _T("Issuer Action Code - Default", "b"),
    0x9F0E: _T("Issuer Action Code - Denial", "b"),
    0x9F0F: _T("Issuer Action Code - Online", "b"),
    0x9F10: _T("Issuer Application Data", "b"),
    0x9F11: _T("Issuer Code Table Index", "n"),
    0x9F12: _T("Application Preferred Name", "ans"),
    0x9F13: _T("Last Online ATC Register", "b"),
    0x9F14: _T("Lower Consecutive Offline Limit", "b"),
    0x9F17: _T("PIN Try Counter", "b"),
    0x9F18: _T("Issuer Script Identifier", "b"),
    0x9F19: _T("Token Requestor ID", "n"),
    0x9F1A: _T("Terminal Country Code", "n"),
    0x9F1F: _T("Track 1 Discretionary Data", "ans"),
    0x9F20: _T("Track 2 Discretionary Data", "cn"),
    0x9F21: _T("Transaction Time", "n"),
    0x9F23: _T("Upper Consecutive Offline Limit", "b"),
    0x9F26: _T("Application Cryptogram", "b"),
    0x9F27: _T("Cryptogram Information Data", "b"),
    0x9F2A: _T("Kernel Identifier", "b"),
    0x9F32: _T("Issuer Public Key Exponent", "b"),
    0x9F33: _T("Terminal Capabilities", "b"),
    0x9F34: _T("CVM Results", "b"),
    0x9F35: _T("Terminal Type", "n"),
    0x9F36: _T("Application Transaction Counter", "b"),
    0x9F37: _T("Unpredictable Number", "b"),
    0x9F38: _T("PDOL", "b"),
    0x9F40: _T("Additional Terminal Capabilities", "b"),
    0x9F42: _T("Application Currency Code", "n"),
    0x9F45: _T("Data Authentication Code", "b"),
    0x9F46: _T("ICC Public Key Certificate", "b"),
    0x9F47: _T("ICC Public Key Exponent", "b"),
    0x9F48: _T("ICC Public Key Remainder", "b"),
    0x9F49: _T("DDOL", "b"),
    0x9F4A: _T("Static Data Authentication Tag List", "b"),
    0x9F4B: _T("Signed Dynamic Application Data", "b"),
    0x9F4C: _T("ICC Dynamic Number", "b"),
    0x9F4D: _T("Log Entry", "b"),
    0x9F4E: _T("Merchant Name and Location", "ans"),
    0x9F4F: _T("Log Format", "b"),
    0x9F51: _T("Application Currency Code (PBOC)", "n"),
    0x9F5D: _T("Available Offline Spending Amount", "n"),
    0x9F61: _T("Cardholder ID Number", "ans"),
    0x9F62: _T("Cardholder ID Type", "b"),
    0x9F63: _T("Card Product Identification", "b"),
    0x9F66: _T("Terminal Transaction Qualifiers", "b"),
    0x9F69: _T("Card Authentication Related Data", "b"),
    0x9F6C: _T("Card Transaction Qualifiers", "b"),
    0x9F6D: _T("EC Reset Threshold", "n"),
    0x9F74: _T("EC Issuer Authorisation Code", "a"),
    0x9F77: _T("EC Balance Limit", "n"),
    0x9F78: _T("EC Single Transaction Limit", "n"),
    0x9F79: _T("EC Balance", "n"),
    0x9F7A: _T("EC Terminal Support Indicator", "b"),
    0x9F7B: _T("EC Terminal Transaction Limit", "n"),
    0xBF0C: _T("FCI Issuer Discretionary Data", "b"),
    0xDF4D: _T("EC Load Log Entry", "b"),
    0xDF4F: _T("EC Load Log Format", "b"),
    0xDF69: _T("SM Algorithm Support Indicator", "b"),
}


def tag_name(tag: int) -> str:
    info = TAG_INFO.get(tag)
    return info.name if info is not None else f"tag {tag:X}"


def tag_format(tag: int) -> str:
    """The tag's data format; unknown tags are treated as binary."""
    info = TAG_INFO.get(tag)
    return info.fmt if info is not None else "b"
