"""The sentences an operator reads, in Chinese and English: one catalogue, one language choice.

Operator lines (tap lines, receipts, kiosk and desk messages, CLI errors) are built from
this catalogue and say what happened in words; status words, counters and command names
stay in ``--json`` and the logs. Card refusals are worded by the status word's name in
``terminal.apdu.status.SW`` (the one place status words are declared; one without words is
shown in hex), gateway refusals by the gateway's error code, fare and kiosk refusals by their
codes (``FareRefusal``, ``KioskRefusal``), fare notes, transport refusals' detail and door
reasons by their ``Note`` code and values (terminal/notes.py), card log entries by ``TxnType``
name, transport errors by their kind (reader gone, card removed, no card, other failures).
"""

from __future__ import annotations

import locale
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from terminal.apdu.errors import CardError, TransportError, YikatongError
from terminal.apdu.status import SW
from terminal.campus.reasons import DOOR_TEXT, DoorRefusal
from terminal.epurse.commands import TxnType
from terminal.fares.notes import NOTE_TEXT, NoteCode
from terminal.journal.journal import SETTLED, JournalRow
from terminal.money import format_fen
from terminal.notes import Note, note_values
from terminal.qr.code import QrReason
from terminal.roles.validator import TapOutcome, TapResult

if TYPE_CHECKING:
    from terminal.campus.door import Decision
    from terminal.roles.issuance import IssuanceError

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")

# A fare note's or a transport refusal's detail in Chinese (terminal.fares.notes.NoteCode; the
# English is the note's own, ``NOTE_TEXT``).
NOTE_ZH: dict[NoteCode, str] = {
    NoteCode.CONCESSION: "{kind}卡付票价的 {percent}%",
    NoteCode.TRANSFER: "{minutes} 分钟内换乘优惠",
    NoteCode.MISSING_EXIT: "在 {station} 站进站后没有出站记录",
    NoteCode.NO_ENTRY_MAX_FARE: "没有进站记录：按最高票价收费",
    NoteCode.OVERTIME: "在站内超过 {minutes} 分钟",
    NoteCode.ENTRY_DEPOSIT: "进站押金已抵扣",
    NoteCode.OPENING_NOT_LOGGED: "卡上的开始记录不在卡的交易明细中",
    NoteCode.OPENING_IN_FUTURE: "卡上的开始时间晚于现在",
    NoteCode.JOURNAL_EARLIER: "本机流水的开始时间早于卡上的",
    NoteCode.NO_RENT_MAX_FEE: "没有租车记录：按最高费用收费",
    NoteCode.DEPOSIT_CREDITED: "押金 {amount} 已抵扣",
    NoteCode.NO_ENTRY_DAILY_CAP: "没有入场记录：按一天封顶收费",
    NoteCode.NO_ENTRY: "没有入场记录",
    NoteCode.OVER_METER_LIMIT: "计价器金额 {amount} 超过票价文件上限 {maximum}",
    NoteCode.RENTING: "自 {since} 起在租车辆 {vehicle}",
    NoteCode.RENTED_SINCE: "自 {since} 起在租车",
    NoteCode.RENTED_HERE: "{since} 在本机租车，尚未归还",
    NoteCode.DEPOSIT_SHORT: "押金 {deposit}",
    NoteCode.NO_ROUTE_FARE: "没有 {origin} 至 {destination} 的票价",
    NoteCode.PARKED: "自 {since} 起在场内",
    NoteCode.SEE_ATTENDANT: "{why}",
    NoteCode.STAY_TOO_LONG: "入场时间 {since} 已超过 {days} 天",
}

# Why a door refused a card in Chinese (terminal.campus.reasons.DoorRefusal; the English is
# the reason's own, ``DOOR_TEXT``).
DOOR_ZH: dict[DoorRefusal, str] = {
    DoorRefusal.NOT_GENUINE: "不是真的校园卡（卡内没有校园密钥）",
    DoorRefusal.NOT_READ: "读卡失败，请重新刷卡",
    DoorRefusal.HOTLISTED: "此卡已挂失或锁定",
    DoorRefusal.NOT_ENROLLED: "此卡未在本单位登记",
    DoorRefusal.BLOCKED: "此卡已被管理部门停用",
    DoorRefusal.IDENTITY: "卡内身份信息与登记不符",
    DoorRefusal.NOT_VALID: "此卡在 {day} 无效（有效期 {valid_from} 至 {valid_until}）",
    DoorRefusal.NO_GROUP_RULES: "“{group}”组没有门禁规则",
    DoorRefusal.DOOR_NOT_ALLOWED: "“{group}”组不能使用“{door}”门",
    DoorRefusal.GROUP_NOT_VALID: "“{group}”组在 {day} 无效",
    DoorRefusal.OUTSIDE_ZONE: "不在“{zone}”时段内（{time}）",
    DoorRefusal.INSIDE: "防潜回：已在“{area}”内，未刷出",
    DoorRefusal.OUTSIDE: "防潜回：已在“{area}”外，未刷入",
}

# key -> (中文, English). Fields in braces are filled by ``say``.
CATALOGUE: dict[str, tuple[str, str]] = {
    # -- tap outcomes (validators) -----------------------------------------------------------
    "tap.green": ("通过", "GREEN"),
    "tap.red": ("拒绝", "RED  "),
    "tap.bus_paid": ("公交车费 {fare} 已付", "bus fare {fare} paid"),
    "tap.entry": ("地铁进站，出站时扣费", "metro entry - no fare, paid at the exit"),
    "tap.exit_paid": ("地铁车费 {fare} 已付", "metro fare {fare} paid"),
    "tap.paid": ("车费 {fare} 已付", "fare {fare} paid"),
    "tap.suspect": ("车费 {fare} 已扣，待核对", "fare {fare} taken, kept for checking"),
    "tap.completed": ("上次中断的扣款已完成 {fare}", "interrupted payment completed: {fare}"),
    "tap.completed_unchecked": (
        "上次中断的扣款已完成 {fare}，MAC2 未核验（清算时核验 TAC）",
        "interrupted payment completed: {fare}; paid, MAC2 not checked (TAC checked at clearing)",
    ),
    "tap.already_paid": ("已付过，不重复扣款", "already paid - not charged again"),
    "tap.insufficient": (
        "余额不足（车费 {fare}），请到自助机充值",
        "insufficient balance (fare {fare}): top up at a kiosk",
    ),
    "tap.blocked": (
        "卡已锁定（挂失），请到服务网点",
        "card blocked (挂失): refer to the service desk",
    ),
    "tap.lost": ("此卡已挂失，已锁定", "card reported lost (挂失): blocked"),
    "tap.lost_unblocked": ("此卡已挂失，拒绝", "card reported lost (挂失): refused"),
    "tap.expired": ("卡已过期或未到启用日期", "card expired or not yet valid"),
    "tap.not_read": ("读卡失败，请重新刷卡", "card not read: tap again"),
    "tap.removed": ("扣款时卡片离开，请重新刷卡", "card removed during payment: tap again"),
    "tap.removed_early": (
        "卡片离开过快，未扣款，请重新刷卡",
        "card removed, not charged: tap again",
    ),
    "tap.unusable": ("不是可用的交通卡", "not a usable transport card"),
    "tap.not_interoperable": (
        "非互联互通卡，此处不能使用",
        "card not accepted here (not interoperable)",
    ),
    "tap.not_charged": (
        "未扣款：卡片余额字最高位被置位，请到服务网点",
        "not charged: the card's balance word has its top bit set; refer it to the service desk",
    ),
    "tap.refused": ("拒绝：{reason}", "refused: {reason}"),
    "tap.card_refused": ("卡片拒绝：{reason}", "card refused: {reason}"),
    "tap.detail": ("{sentence}（{detail}）", "{sentence} ({detail})"),
    "tap.notes": ("（{notes}）", "({notes})"),
    "tap.balance": ("余额 {balance}", "balance {balance}"),
    "tap.out_of_service": ("暂停服务：{reason}", "out of service: {reason}"),
    "tap.code_paid": ("乘车码支付，车费 {fare}", "fare {fare} paid by ride code"),
    "tap.code_not_accepted": (
        "此处不接受乘车码，请刷卡",
        "ride codes are not accepted here: tap a card",
    ),
    "tap.code_not_read": ("未能读取乘车码，请重新扫码", "code not read: scan it again"),
    "tap.code_refused": ("乘车码无效：{reason}", "ride code refused: {reason}"),
    "code.invalid": (
        "无法识别此码，请刷新乘车码",
        "the code cannot be read or checked: refresh it",
    ),
    "code.expired": ("乘车码已过期，请刷新", "the code has expired: refresh it"),
    "code.not_here": ("此乘车码在本线路不能使用", "this ride code is not accepted on this line"),
    "code.over_limit": (
        "车费超出乘车码限额，请刷卡",
        "the fare is over the code's limit: tap a card",
    ),
    "code.used": ("此码已使用，请稍后刷新再试", "this code was just used: refresh it later"),
    "code.fare": ("票价规则不允许此次乘车", "the fare rules do not allow this ride"),
    # -- fare refusals (terminal.fares.engine.FareRefusal values) ------------------------------
    "fare.unknown-station": (
        "本站不在票价表中，请检查票价文件",
        "this station is not in the fare file: check the fare file",
    ),
    "fare.no-entry": (
        "卡上没有进站记录，请找站务员",
        "no entry recorded on the card: see the station staff",
    ),
    "tap.no_meter_fare": (
        "计价器没有金额，请司机先输入",
        "no fare on the meter: the driver enters it",
    ),
    "tap.over_meter_limit": (
        "计价器金额超出上限，请核对计价器",
        "the meter amount is over the maximum fare: check the meter",
    ),
    "tap.already_renting": ("此卡已在租车，请先还车", "this card is already renting: return first"),
    "tap.deposit_short": (
        "余额不足以支付押金，请充值",
        "not enough balance for the deposit: top up",
    ),
    "tap.no_destination": ("请先选择目的地", "choose a destination first"),
    "tap.no_route_fare": ("没有到该目的地的票价", "no fare to that destination"),
    "tap.already_parked": ("此卡已在场内，请先出场", "this card is already parked: exit first"),
    "tap.see_attendant": ("没有入场记录，请找管理员", "no entry found: see the attendant"),
    "tap.stay_too_long": ("入场时间过久，请找管理员", "entry too long ago: see the attendant"),
    "banner.validator.line": (
        "验票机 {terminal}，模式 {mode}，线路 {line}，票价表 {fares}；"
        "流水 {journal}（{open} 笔未完成）；挂失名单版本 {version}（{cards} 张卡）",
        "validator {terminal} mode {mode} line {line}, fares {fares}; journal {journal} ({open} "
        "open row(s)); hotlist version {version} ({cards} card(s))",
    ),
    "banner.validator.station": (
        "{mode}闸机 {terminal}，车站 {station}，票价表 {fares}；流水 {journal}（{open} 笔未完成）；"
        "挂失名单版本 {version}（{cards} 张卡）",
        "{mode} gate {terminal} station {station}, fares {fares}; journal {journal} ({open} "
        "open row(s)); hotlist version {version} ({cards} card(s))",
    ),
    "mode.metro-entry": ("地铁进站", "metro entry"),
    "mode.metro-exit": ("地铁出站", "metro exit"),
    # -- doors (terminal/campus: DoorRefusal values pick the reason's words) ------------------
    **{f"door.{code}": (zh, DOOR_TEXT[code]) for code, zh in DOOR_ZH.items()},
    "door.granted": ("可以通行", "may pass"),
    "door.refused": ("拒绝：{reason}", "refused: {reason}"),
    "door.line.granted": ("通过  {point}：{who} 可以通行", "GREEN {point}: {who} may pass"),
    "door.line.refused": (
        "拒绝  {point}：{who}：{reason}",
        "RED   {point}: {who} refused: {reason}",
    ),
    "door.unknown_card": ("未知卡", "unknown card"),
    "door.clone_refused": (
        "拒绝：不是真卡（卡内没有校园密钥）",
        "refused: not a genuine campus card (it does not hold the campus key)",
    ),
    # -- fare notes and transport refusals' detail (terminal.fares.notes) ----------------------
    **{f"note.{code}": (zh, NOTE_TEXT[code]) for code, zh in NOTE_ZH.items()},
    "note.separator": ("；", "; "),
    # the concession kinds of the demo fare file (a kind with no words is shown as written)
    "concession.student": ("学生", "student"),
    "concession.elderly": ("老年", "elderly"),
    "concession.disabled": ("残疾人", "disabled"),
    # -- ride codes (terminal/qr: QrReason values pick the refusal's words) --------------------
    "qr.paid": (
        "乘车码：车费 {fare} 已付，由发码平台 {platform} 结算",
        "ride code: fare {fare} paid, charged to platform {platform}",
    ),
    "qr.refused": ("乘车码拒绝：{reason}", "ride code refused: {reason}"),
    "qr.unknown-root-key": (
        "不认识此码的根密钥",
        "the code's root key is not one this gate trusts",
    ),
    "qr.certificate-expired": ("发码机构证书已过期", "the issuer's certificate has expired"),
    "qr.certificate-signature": (
        "发码机构证书签名不符",
        "the issuer's certificate is not signed by the root key",
    ),
    "qr.issuer-signature": (
        "发码平台签名不符：码被改过",
        "the issuing platform's signature does not match: the code was altered",
    ),
    "qr.user-signature": (
        "手机签名不符：码被改过",
        "the phone's signature does not match: the code was altered",
    ),
    "qr.authorisation-expired": (
        "乘车码授权已过期，请刷新",
        "the code's authorisation has expired",
    ),
    "qr.code-expired": ("乘车码已过期，请刷新", "the code has expired: refresh it"),
    "qr.generated-in-future": ("手机时间不对，请校准", "the phone's clock is ahead: set it right"),
    "qr.unknown-issuer": (
        "本线路不受理此平台的乘车码",
        "codes of this platform are not taken here",
    ),
    "qr.account-type": ("本线路不受理此类账户", "this kind of account is not taken here"),
    "qr.over-ride-limit": ("车费超出此码单笔限额", "the fare is above the code's per-ride limit"),
    "qr.replay": ("此码已用过", "this code has already paid a ride"),
    "qr.debounce": ("刚刚已扫过，不重复扣费", "scanned a moment ago: not charged again"),
    "qr.too-soon": ("两次乘车间隔太短", "too soon after this account's last ride"),
    "qr.mode": ("此处不受理乘车码", "ride codes are not taken here"),
    # -- card log entries (TxnType names) ------------------------------------------------------
    "txn.ED_LOAD": ("存折圈存", "passbook top-up"),
    "txn.EP_LOAD": ("充值", "top-up"),
    "txn.UNLOAD": ("圈提", "unload"),
    "txn.ED_CASH_WITHDRAW": ("取现", "cash withdrawal"),
    "txn.ED_PURCHASE": ("存折消费", "passbook payment"),
    "txn.EP_PURCHASE": ("消费", "payment"),
    "txn.OVERDRAFT_UPDATE": ("透支限额修改", "overdraft limit change"),
    "txn.CREDIT_PURCHASE": ("信用消费", "credit payment"),
    "txn.CAPP_PURCHASE": ("乘车", "ride"),
    "txn.unknown": ("其他交易", "other transaction"),
    # -- card refusals by status word name (terminal.apdu.status.SW) ---------------------------
    "sw.SELECTED_FILE_INVALIDATED": (
        "卡已锁定，请到服务网点",
        "card blocked: refer to the service desk",
    ),
    "sw.WRONG_LENGTH": (
        "卡片不接受此操作（数据长度）",
        "the card did not accept the request (length)",
    ),
    "sw.SECURITY_STATUS": (
        "需要先输入密码或认证",
        "the card needs its PIN or an authentication first",
    ),
    "sw.PIN_BLOCKED": ("密码已锁，请到服务网点解锁", "PIN locked: unlock it at the service desk"),
    "sw.CONDITIONS": ("卡片当前不允许此操作", "the card does not allow this now"),
    "sw.STATE_MISMATCH": ("操作顺序有误，请重新刷卡", "steps out of order: present the card again"),
    "sw.CAPP_CACHE_FAILED": ("乘车记录写入失败，请重新刷卡", "trip record not written: tap again"),
    "sw.WRONG_DATA": ("卡片不接受此数据", "the card did not accept the data"),
    "sw.FUNCTION_NOT_SUPPORTED": (
        "卡片不支持此功能（可能已锁定）",
        "the card does not support this (it may be blocked)",
    ),
    "sw.FILE_NOT_FOUND": ("卡上没有此应用", "the card has no such application"),
    "sw.RECORD_NOT_FOUND": ("卡上没有此记录", "the card has no such record"),
    "sw.FILE_EXISTS": ("卡片已个人化过", "the card is already personalised"),
    "sw.WRONG_P1P2": (
        "卡片不接受此操作（参数）",
        "the card did not accept the request (parameters)",
    ),
    "sw.INS_NOT_SUPPORTED": ("卡片不支持此操作", "the card does not support this request"),
    "sw.CLA_NOT_SUPPORTED": ("卡片不支持此操作", "the card does not support this request"),
    "sw.MAC_ERROR": ("安全校验失败，交易未完成", "security check failed: nothing was done"),
    "sw.APP_LOCKED": (
        "卡已永久锁定，请到服务网点",
        "card locked for good: refer to the service desk",
    ),
    "sw.INSUFFICIENT_BALANCE": ("余额不足", "insufficient balance"),
    "sw.KEY_NOT_FOUND": (
        "卡片与本终端密钥版本不符",
        "the card's keys do not match this terminal's",
    ),
    "sw.MAC_UNAVAILABLE": ("无法取得交易证明", "the card's proof of the payment is not available"),
    "sw.WRONG_PIN_ANY": ("密码错误", "wrong PIN"),
    "sw.unknown": ("卡片拒绝了此操作（状态字 {sw}）", "the card refused the request ({sw})"),
    "sw.not_understood": (
        "卡片的应答无法识别，请重新刷卡",
        "the card's answer was not understood: tap again",
    ),
    # -- POS and kiosk services (ykt run): the ``text`` of a sale's or a request's log line --
    "sale.paid": ("消费 {amount} 已付；余额 {balance}", "sale {amount} paid; balance {balance}"),
    "sale.insufficient": (
        "余额不足，请换卡或充值",
        "insufficient balance: another card or a top-up",
    ),
    "sale.cannot_pay": (
        "此卡不能支付：{reason}",
        "the card cannot pay: {reason}",
    ),
    "sale.interrupted": (
        "扣款时卡片离开：请放同一张卡，重做同一笔消费",
        "card removed during payment: present the same card and make the same sale again",
    ),
    "sale.card_refused": ("卡片拒绝：{reason}", "card refused: {reason}"),
    "sale.proof_refused": (
        "卡片对上次中断扣款的证明未通过安全模块校验：未付款，已送核对",
        "the card's proof of the interrupted payment was refused: NOT paid, sent for checking",
    ),
    "sale.not_understood": ("读卡异常，请重新放卡", "the card's answer was not understood: again"),
    "till.refused": ("不能消费：{reason}", "not sold: {reason}"),
    "library.lent": (
        "已借出 {book}；在借 {held} 本，上限 {limit} 本",
        "{book} lent; {held} book(s) held of {limit}",
    ),
    "library.returned": ("已归还 {book}", "{book} returned"),
    "library.refused": ("未办理：{reason}", "not done: {reason}"),
    "kiosk.topped_up": (
        "充值 {amount} 成功；余额 {balance}",
        "top-up {amount} done; balance {balance}",
    ),
    "kiosk.picked_up": (
        "补贴 {amount} 已领取；余额 {balance}",
        "subsidy {amount} paid; balance {balance}",
    ),
    "kiosk.balance_read": ("余额 {balance}", "balance {balance}"),
    "desk.issued": ("已发卡 {card}", "card {card} issued"),
    "desk.replaced": (
        "已补卡 {card}（原卡 {old}），转入 {carried}",
        "card {card} issued in place of lost card {old}, {carried} carried",
    ),
    "kiosk.refused": ("不能办理：{reason}", "not done: {reason}"),
    # why the kiosk will not start a load (terminal.roles.kiosk.KioskRefusal values)
    "kiosk.refusal.amount": (
        "充值金额须在 {low} 至 {high} 之间，不能是 {amount}",
        "a top-up must be between {low} and {high}, not {amount}",
    ),
    "kiosk.refusal.over-ceiling": (
        "卡内余额 {balance}，上限 {ceiling}：最多可充 {room}",
        "the card holds {balance} and at most {ceiling}: top up {room} or less",
    ),
    "kiosk.refusal.no-load-host": (
        "本机未连接卡务中心，只能查询余额，不能充值",
        "this kiosk has no load host (no gateway): it reads cards only",
    ),
    "kiosk.refusal.no-subsidies": (
        "本机未连接补贴服务，不能领取补贴",
        "this kiosk has no subsidy service (no gateway)",
    ),
    "kiosk.load_interrupted": (
        "充值时卡片离开：请放回同一张卡完成充值（只会充值一次或不充值）",
        "card removed during the top-up: present the same card again to finish (it is "
        "credited once or not at all)",
    ),
    "counter.no_card": (
        "{seconds} 秒内没有放卡：请放卡后重新提交",
        "no card in the field within {seconds} s: present the card and send it again",
    ),
    "counter.busy": (
        "上一笔尚未完成，本次未办理：请稍后重新提交",
        "another request is in progress: nothing was done, send it again when it is done",
    ),
    "counter.stopping": (
        "本机正在停止，本次未办理：请稍后再试",
        "this device is stopping: nothing was done, try again later",
    ),
    "counter.out_of_service": (
        "本机暂停服务，本次未办理：请联系管理员",
        "this device is out of service: nothing was done, call the operator",
    ),
    "counter.bad_request": (
        "请求内容有误，本次未办理：请核对后重新提交",
        "the request is not valid: nothing was done, check it and send it again",
    ),
    "status.not_json": (
        "请求内容不是 JSON，本次未办理：请核对后重新提交",
        "the request is not JSON: nothing was done, check it and send it again",
    ),
    "status.body_size": (
        "请求内容长度应为 0 至 {max} 字节，本次未办理：请核对后重新提交",
        "the request is not 0 to {max} bytes long: nothing was done, check it and send it again",
    ),
    "desk.unavailable": (
        "暂时无法连接卡务中心，未发卡，请稍后再试",
        "the card centre cannot be reached now; no card was issued, try later",
    ),
    "desk.already_issued": (
        "读卡器上的卡已发过，请放一张空白卡",
        "the card in the reader is issued already: put a blank card in",
    ),
    "desk.card_refused": (
        "未发卡，卡片拒绝：{reason}",
        "no card issued, the card refused: {reason}",
    ),
    "desk.failed": (
        "未发卡：请核对申请信息和卡片后重试（原因已记入日志）",
        "no card issued: {reason}",
    ),
    # an issuance refusal (terminal.roles.issuance.IssuanceRefusal): the English is the log's
    "issuance.no-campus-person": (
        "身份证号 {id_prefix}… 没有对应的校园学工号：请先在后台录入此人",
        "no campus person number for ID {id_prefix}...: enter the person in the back office first",
    ),
    "issuance.campus-identity": (
        "校园身份信息无法写入：请核对后台的人员资料（原因已记入日志）",
        "campus identity: {detail}",
    ),
    "issuance.no-centre": (
        "本发卡台没有连接卡务中心，无法申领卡号",
        "this desk has no card centre to lease card numbers from",
    ),
    "issuance.lease-refused": (
        "卡务中心不分配卡号：{refusal}",
        "the card centre leases no numbers: {refusal}",
    ),
    "issuance.centre-unreachable": (
        "暂时无法连接卡务中心：请在网关恢复后重试",
        "{detail}: try again when the gateway answers",
    ),
    "issuance.no-numbers": (
        "未发卡：本发卡台没有可用的卡号，请联网向卡务中心申领号段"
        "（ykt issue --lease N --gateway URL）",
        "no card issued: {reason}",
    ),
    "issuance.no-numbers-lease": (
        "未发卡：本发卡台没有可用的卡号（{lease}）",
        "no card issued: {reason} ({lease})",
    ),
    "issuance.claim-refused": (
        "未发卡，卡号 {number} 已作废：{refusal}",
        "no card issued, number {number} voided: {refusal}",
    ),
    "issuance.kind-type-range": (
        "卡种类和卡类型各为一个字节（0 至 255）：请核对申请信息",
        "card kind and card type are one byte each",
    ),
    "issuance.carry-offline": (
        "卡 {number} 未补办：余额 {balance} 分只能经卡务中心记账圈存转入，请先连接网关",
        "card {number} is not replaced: its balance of {balance} fen is carried only through "
        "the gateway's journaled load; connect the desk to the gateway",
    ),
    "issuance.carry-refused": (
        "卡 {number} 未补办，余额未转：{refusal}",
        "card {number} is not replaced, nothing is carried: {refusal}",
    ),
    "issuance.carry-unknown": (
        "卡 {number} 未补办：卡务中心没有给出余额",
        "card {number} is not replaced: the gateway gave no balance",
    ),
    "issuance.carry-mismatch": (
        "卡 {number} 未补办：本发卡台账上余额 {book} 分（{as_of}），卡务中心核实为 {proven} 分；"
        "请到后台核对",
        "card {number} is not replaced: the desk's book holds {book} fen as of {as_of}, the "
        "gateway proves {proven} fen; settle it at the back office",
    ),
    "issuance.no-hotlist": (
        "卡 {number} 须先列入黑名单才能补办：本发卡台没有黑名单",
        "card {number} must be hotlisted before it is replaced: this desk has no hotlist",
    ),
    "issuance.carry-no-gateway": (
        "补办的卡 {number} 尚待转入余额 {amount} 分：本发卡台没有连接网关，无法圈存",
        "replacement {number} waits for its carried {amount} fen: this desk has no gateway to "
        "load it through",
    ),
    "issuance.carry-open": (
        "补办的卡 {number}：上一次余额转入尚未了结，请在网关恢复后重试",
        "replacement {number}: an earlier carried load is not settled yet; try again when the "
        "gateway answers",
    ),
    "issuance.carry-balance": (
        "补办的卡 {number} 余额为 {balance} 分，应为 0 或转入的 {amount} 分：请交后台处理",
        "replacement {number} holds {balance} fen, expected 0 or the carried {amount}: hand it "
        "to the back office",
    ),
    "issuance.personalised": (
        "卡 {number} 已个人化：请放一张空白卡",
        "card {number} is already personalised; put a blank card in",
    ),
    "issuance.other-holder": (
        "卡 {number} 属于另一位持卡人：请放一张空白卡",
        "card {number} belongs to someone else",
    ),
    "issuance.issued": (
        "卡 {number} 已发出，不能再次发卡：请放一张空白卡",
        "card {number} is already issued and {state}",
    ),
    # the card centre's refusal inside an issuance refusal, by its code (English: its reason)
    "issuance.centre": ("卡务中心拒绝（{reason}）", "{reason}"),
    "issuance.centre.same_person": ("此人已持有同类有效卡（一人一卡）", "{reason}"),
    "issuance.centre.card_lost": (
        "此人有一张已挂失的同类卡：请办理补卡（余额转入新卡），不要另发新卡",
        "{reason}",
    ),
    "kiosk.unavailable": (
        "暂时无法连接卡务中心，未充值，请稍后再试",
        "the card centre cannot be reached now; nothing was loaded, try later",
    ),
    "run.banner.counts.validator": ("{green} 次通过，{red} 次拒绝", "{green} green, {red} red"),
    "run.banner.counts.pos": ("{green} 笔成功，{red} 笔拒绝", "{green} approved, {red} refused"),
    "run.banner.counts.kiosk": ("{green} 笔完成，{red} 笔拒绝", "{green} done, {red} refused"),
    "run.banner.counts.trips": ("{green} 笔已付，{red} 笔拒绝", "{green} paid, {red} refused"),
    "run.banner.counts.library": ("{green} 笔已办理，{red} 笔拒绝", "{green} done, {red} refused"),
    "run.banner.counts.desk": ("{green} 张已发卡，{red} 张拒绝", "{green} issued, {red} refused"),
    "run.stopped": (
        "ykt run：已停止；{counts}，{waiting} 笔待上传",
        "ykt run: stopped; {counts}, {waiting} awaiting upload",
    ),
    "validator.summary": (
        "{counts}；流水：{settled} 笔已完成（{amount}），{open} 笔未完成，"
        "{sent}{waiting} 笔待上传，{parked} 笔搁置",
        "{counts}; journal: {settled} settled ({amount}), {open} open, {sent}{waiting} awaiting "
        "upload, {parked} parked",
    ),
    "validator.uploaded": ("本次上传 {count} 笔，", "{count} uploaded now, "),
    "run.out_of_service": ("ykt run：暂停服务：{reason}", "ykt run: out of service: {reason}"),
    # -- kiosk ---------------------------------------------------------------------------------
    "kiosk.no_epurse": (
        "这张卡没有电子钱包（交通卡应用），不能在自助机查询或充值。{more}",
        "This card has no e-purse (transport application): the kiosk cannot show or top up a "
        "balance on it. {more}",
    ),
    "kiosk.no_epurse.ec": (
        "卡内金融应用的电子现金余额为 {balance}，可在商户 POS 使用（ykt pos --pay ec）。",
        "Its bank application's Electronic Cash holds {balance}, usable at a merchant POS "
        "(ykt pos --pay ec).",
    ),
    "kiosk.no_epurse.none": (
        "请持卡到发卡网点办理。",
        "Take it to the card's issuer for its own services.",
    ),
    "receipt.heading": ("一卡通自助服务", "yikatong self-service"),
    "receipt.top_up": ("充值", "TOP-UP"),
    "receipt.balance": ("余额查询", "BALANCE"),
    "receipt.loss": ("挂失", "LOSS REPORT"),
    "receipt.subsidy": ("惠民补贴领取", "SUBSIDY PICKUP"),
    "receipt.sale": ("消费", "SALE"),
    "receipt.terminal": ("终端", "Terminal"),
    "receipt.time": ("时间", "Time"),
    "receipt.card": ("卡号", "Card"),
    "receipt.amount": ("金额", "Amount"),
    "receipt.balance_row": ("余额", "Balance"),
    "receipt.proof": ("交易验证码", "Auth code"),  # the card's TAC: the value is unchanged
    "receipt.sequence": ("终端流水", "Txn no."),
    "receipt.completed": (
        "上次中断的扣款已完成：只扣一次。",
        "An interrupted payment was completed: charged once.",
    ),
    "receipt.mac2_unchecked": (
        "已付款，终端未核验 MAC2（清算时核验交易验证码）。",
        "Paid, MAC2 not checked (TAC checked at clearing).",
    ),
    "receipt.unverified": (
        "终端未能核验卡片的交易证明：已送核对。",
        "Card proof not verified by the PSAM: sent for checking.",
    ),
    "receipt.ec_journaled": (
        "电子现金消费第 {seq} 笔已记录。",
        "Electronic Cash sale {seq} journaled.",
    ),
    "receipt.reference": ("流水号", "Reference"),
    "receipt.hotlist": ("挂失名单", "Hotlist"),
    "receipt.hotlist_version": ("第 {version} 版", "version {version}"),
    "receipt.paid_from": ("支付方式", "Paid from"),
    "receipt.paid": ("已领取：", "Paid:"),
    "receipt.keep": ("请保留此凭条。", "Keep this receipt."),
    "receipt.history": ("最近交易：", "Last transactions:"),
    "receipt.no_history": ("暂无交易。", "No transactions yet."),
    "receipt.loss_note": (
        "各终端下次更新挂失名单后即拒绝此卡。\n请到服务网点补办新卡，余额转入新卡。",
        "The card is blocked at each terminal\nat its next hotlist update. Apply for a\n"
        "replacement at the service desk: the\nbalance is carried over.",
    ),
    # -- CLI errors ----------------------------------------------------------------------------
    "error.prefix": ("ykt {command}：{text}", "ykt {command}: {text}"),
    "error.gateway_said": (
        "{sentence}（卡务中心：{reason}）",
        "{sentence} (card centre: {reason})",
    ),
    "error.detail": ("（代码 {code}）", "(code {code})"),
    "error.unavailable": (
        "无法连接卡务中心（网关）：{detail}。请检查 --gateway 地址和网络，稍后重试；没有任何改动。",
        "the card centre (gateway) could not be reached: {detail}. Check --gateway and the "
        "network, then try again; nothing was changed.",
    ),
    "error.card_removed": (
        "读卡中断：卡片离开或读卡器断开，请重新放卡后重试。",
        "the card left the reader (or the reader went away): put it back and try again.",
    ),
    "error.reader_gone": (
        "读卡器不可用（未连接、被拔出，或驱动、服务重启）：{detail}。请检查读卡器后重试。",
        "the reader is not available: {detail}",  # which reader, and the hint (pcscd, nfcpy)
    ),
    "error.reader_failed": (
        "读卡器未完成此次读写（通信失败）：请重新放卡后重试。",
        "the reader did not complete the exchange (a communication failure): put the card back "
        "and try again.",
    ),
    "error.reader_timeout": (
        "读卡器等待卡片应答超时：请把卡放稳后重试。",
        "the reader timed out waiting for the card's answer: hold the card still and try again.",
    ),
    "error.no_card": (
        "读卡器上没有卡，请放卡后重试。",
        "no card on the reader: put the card on and try again.",
    ),
    # gateway refusal codes -> the rule and what to do
    "gw.unauthenticated": (
        "卡务中心不认识此终端的令牌：请检查 --token-file 或环境变量中的令牌。",
        "the card centre does not know this terminal's token: check --token-file or the token "
        "variable.",
    ),
    "gw.revoked": (
        "此终端的令牌已被吊销：请向运营方申请新令牌（ykt gateway terminal add）。",
        "this terminal's token was revoked: ask the operator for a new one (ykt gateway "
        "terminal add).",
    ),
    "gw.wrong_role": (
        "此终端的角色不允许此操作：请用对应角色的令牌（自助机、柜台、POS …）。",
        "this terminal's role may not do this: use the token of a terminal with that role "
        "(kiosk, desk, POS …).",
    ),
    "gw.admin_disabled": (
        "卡务中心未启用管理接口：启动时用 --admin-token-file 或设置 YKT_ADMIN_TOKEN。",
        "the card centre's admin interface is off: start it with --admin-token-file PATH or "
        "YKT_ADMIN_TOKEN set.",
    ),
    "gw.unknown_card": (
        "卡务中心没有这张卡：卡须先在发卡柜台发卡并报送卡务中心（ykt issue … --gateway URL，"
        "或 ykt issue --push --gateway URL），之后才能挂失、充值或领补贴。",
        "the card centre has no such card: a card must first be issued at an issuance desk that "
        "reports to the card centre (ykt issue … --gateway URL, or ykt issue --push --gateway "
        "URL); then it can be reported lost, topped up or paid a subsidy.",
    ),
    "gw.not_the_holder": (
        "身份证号与此卡持卡人不符：请持卡人本人办理，或核对卡号和身份证号。",
        "the ID number is not the card holder's: the holder must report it, or check the card "
        "and ID numbers.",
    ),
    "gw.hotlisted": (
        "此卡已挂失，不能充值：请到服务网点补办新卡，余额转入新卡。",
        "this card is reported lost and cannot be topped up: apply for a replacement at the "
        "service desk; the balance is carried over.",
    ),
    "gw.card_in_use": (
        "原卡仍在使用中，尚未挂失：请先挂失原卡，再补办新卡。",
        "the old card is still in use, not reported lost: report it lost (挂失) first, then "
        "replace it.",
    ),
    "gw.same_person": (
        "此人已持有同类有效卡（一人一卡）：如原卡遗失，请先挂失再补卡。",
        "the person holds a live card of this kind already (one person, one card): if it was "
        "lost, report it lost and replace it.",
    ),
    "gw.four_eyes": (
        "同一人不能既申报又审核或审批（四眼原则）：请由另一位工作人员办理。",
        "one person may not both declare and review or approve (four eyes): another member of "
        "staff must do this step.",
    ),
    "gw.not_reviewed": (
        "名单尚未审核：请先审核，再审批。",
        "the roster is not reviewed yet: review it before approving.",
    ),
    "gw.wrong_state": (
        "名单当前状态不允许此步骤：请用 ykt subsidy show 查看状态。",
        "the roster's state does not allow this step: see ykt subsidy show.",
    ),
    "gw.amount_limit": (
        "充值金额超出限额：请选择较小的金额。",
        "the top-up is over the limit: choose a smaller amount.",
    ),
    "gw.balance_limit": (
        "充值后余额将超过上限：请选择较小的金额。",
        "the balance would go over the purse ceiling: choose a smaller amount.",
    ),
    "gw.declined": ("卡务中心拒绝了此次充值。", "the card centre declined the top-up."),
    "gw.no_hsm": (
        "卡务中心未配置密钥（HSM），不能充值：启动时用 --keys FILE。",
        "the card centre has no keys (HSM) configured and cannot load cards: start it with "
        "--keys FILE.",
    ),
    "gw.no_clearing": (
        "卡务中心未连接清算：启动时用 --clearing URL。",
        "the card centre has no clearing house: start it with --clearing URL.",
    ),
    "gw.unknown_terminal": ("卡务中心没有这个终端。", "the card centre has no such terminal."),
    "gw.terminal_exists": (
        "此终端号已登记：换一个终端号，或吊销原终端。",
        "this terminal number is already registered: choose another or revoke the old one.",
    ),
    "gw.unknown_roster": ("没有这份补贴名单。", "there is no such subsidy roster."),
    "gw.too_large": ("请求过大：请分批发送。", "the request is too large: send it in parts."),
    "gw.too_many_records": (
        "记录过多：请分批发送。",
        "too many records at once: send them in parts.",
    ),
    "gw.bad_id_number": ("身份证号无效：请核对。", "the ID number is not valid: check it."),
    "gw.bad_card_number": (
        "卡号无效：请核对 19 位卡号。",
        "the card number is not valid: check the 19 digits.",
    ),
    # -- servers -------------------------------------------------------------------------------
    "serve.gateway": (
        "卡务中心网关：终端接口 http://{host}:{port}/v1，存储 {storage}，密钥 {keys}，"
        "管理接口 {admin}；按 Ctrl-C 停止。",
        "gateway: terminal API at http://{host}:{port}/v1, storage {storage}, keys {keys}, "
        "admin {admin}; Ctrl-C to stop.",
    ),
    "serve.clearing": (
        "清算中心：http://{host}:{port}，存储 {storage}；按 Ctrl-C 停止。",
        "clearing house at http://{host}:{port}, storage {storage}; Ctrl-C to stop.",
    ),
    "serve.on": ("已启用", "on"),
    "serve.off": ("未启用", "off"),
    "serve.none": ("无（不能充值）", "none (no loads)"),
}

_lang: Lang | None = None


def lang_from_locale(env: Mapping[str, str] | None = None) -> Lang:
    """Chinese when the locale says so (LC_ALL, LC_MESSAGES, LANG), English otherwise."""
    env = os.environ if env is None else env
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    try:
        found = locale.getlocale()[0] or ""
    except ValueError:
        found = ""
    return "zh" if found.lower().startswith("zh") else "en"


def set_lang(lang: str | None) -> Lang:
    """Choose the language of operator lines (None: from the locale)."""
    global _lang
    if lang is not None and lang not in LANGS:
        raise ValueError(f"language {lang!r}: zh or en")
    _lang = lang if lang is not None else lang_from_locale()  # type: ignore[assignment]
    return _lang  # type: ignore[return-value]


def lang() -> Lang:
    return _lang if _lang is not None else set_lang(None)


def say(key: str, **fields: object) -> str:
    """The catalogue sentence ``key`` in the chosen language, fields filled in."""
    return sentence(key, lang(), **fields)


def sentence(key: str, in_lang: Lang, **fields: object) -> str:
    """The catalogue sentence ``key`` in ``in_lang`` (a log's English reason), fields filled in."""
    zh, en = CATALOGUE[key]
    return (zh if in_lang == "zh" else en).format(**fields)


def kiosk_words(code: str, amounts: Mapping[str, int], in_lang: Lang | None = None) -> str:
    """Why the kiosk will not start a load (a ``KioskRefusal`` and the amounts in fen it names)."""
    shown = {name: format_fen(fen) for name, fen in amounts.items()}
    return sentence(f"kiosk.refusal.{code}", in_lang or lang(), **shown)


def fare_refusal(reason: str | None) -> str:
    """Why the fare rules refused a ride (a ``FareRefusal`` value) in words."""
    key = f"fare.{reason}"
    return say(key if key in CATALOGUE else "code.fare")


def sw_key(sw: int) -> str | None:
    """The catalogue key of a status word (its declared name in ``SW``), None if it has none."""
    if sw & 0xFFF0 == SW.WRONG_PIN_ANY:
        return "sw.WRONG_PIN_ANY"
    try:
        key = f"sw.{SW(sw).name}"
    except ValueError:
        return None
    return key if key in CATALOGUE else None


def card_refusal(refused: CardError | int) -> str:
    """A card's status word as an operator reads it: the SW's declared name picks the words;
    a status word with none is shown in hex in a sentence that says the card refused."""
    sw = refused.sw if isinstance(refused, CardError) else refused
    key = sw_key(sw)
    return say(key) if key is not None else say("sw.unknown", sw=f"{sw:04X}")


def txn_words(txn_type: int) -> str:
    """A card log entry's kind in words (its ``TxnType`` name picks them)."""
    try:
        return say(f"txn.{TxnType(txn_type).name}")
    except ValueError:
        return say("txn.unknown")


def gateway_refusal(code: str, reason: str) -> str:
    """A gateway refusal as the rule broken and what to do, followed by the gateway's own
    reason (it names the card, the roster, the limit); the reason alone when the catalogue
    has no sentence for the code (it is written for people too)."""
    key = f"gw.{code}"
    if key not in CATALOGUE:
        return reason
    sentence = say(key)
    return say("error.gateway_said", sentence=sentence, reason=reason) if reason else sentence


def error_words(exc: BaseException) -> str:
    """The sentence for an error that ended a command (the class name and codes go to the
    log and --json)."""
    from terminal.apdu.errors import CardRemoved, NoCard, ReaderTimeout, ReaderUnavailable
    from terminal.roles.debit import LoadInterrupted
    from terminal.roles.issuance import IssuanceError
    from terminal.roles.kiosk import TopUpRefused
    from terminal.uplink.client import GatewayRefused, GatewayUnavailable

    if isinstance(exc, TopUpRefused):
        return kiosk_words(exc.code, exc.fields)
    if isinstance(exc, IssuanceError):
        return issuance_words(exc)
    if isinstance(exc, LoadInterrupted):
        return say("kiosk.load_interrupted")
    code, reason = getattr(exc, "code", None), getattr(exc, "reason", None)
    if isinstance(exc, GatewayRefused) or (isinstance(code, str) and isinstance(reason, str)):
        return gateway_refusal(str(code), str(reason))
    if isinstance(exc, GatewayUnavailable):
        return say("error.unavailable", detail=exc)
    if isinstance(exc, NoCard):
        return say("error.no_card")
    if isinstance(exc, CardRemoved):
        return say("error.card_removed")
    if isinstance(exc, ReaderUnavailable):
        return say("error.reader_gone", detail=exc)
    if isinstance(exc, ReaderTimeout):
        return say("error.reader_timeout")
    if isinstance(exc, TransportError):
        return say("error.reader_failed")
    if isinstance(exc, CardError):
        return card_refusal(exc)
    return str(exc)


# A tap's outcome (set where the validator, its mode or the ride-code gate decides) to the
# catalogue sentence that says it to a rider or driver.
TAP_WORDS: dict[TapOutcome, str] = {
    TapOutcome.PAID: "tap.paid",
    TapOutcome.PAID_SUSPECT: "tap.suspect",
    TapOutcome.COMPLETED: "tap.completed",
    TapOutcome.ALREADY_PAID: "tap.already_paid",
    TapOutcome.CODE_PAID: "tap.code_paid",
    TapOutcome.INSUFFICIENT: "tap.insufficient",
    TapOutcome.BLOCKED: "tap.blocked",
    TapOutcome.LOST: "tap.lost",
    TapOutcome.LOST_UNBLOCKED: "tap.lost_unblocked",
    TapOutcome.EXPIRED: "tap.expired",
    TapOutcome.NOT_READ: "tap.not_read",
    TapOutcome.REMOVED: "tap.removed_early",
    TapOutcome.INTERRUPTED: "tap.removed",
    TapOutcome.UNUSABLE: "tap.unusable",
    TapOutcome.NOT_INTEROPERABLE: "tap.not_interoperable",
    TapOutcome.BALANCE_FLAG: "tap.not_charged",
    TapOutcome.CARD_REFUSED: "tap.card_refused",
    TapOutcome.FARE_REFUSED: "tap.refused",
    TapOutcome.CODE_NOT_ACCEPTED: "tap.code_not_accepted",
    TapOutcome.CODE_REFUSED: "tap.code_refused",
    TapOutcome.CODE_NOT_READ: "tap.code_not_read",
    TapOutcome.NO_METER_FARE: "tap.no_meter_fare",
    TapOutcome.OVER_METER_LIMIT: "tap.over_meter_limit",
    TapOutcome.ALREADY_RENTING: "tap.already_renting",
    TapOutcome.DEPOSIT_SHORT: "tap.deposit_short",
    TapOutcome.NO_DESTINATION: "tap.no_destination",
    TapOutcome.NO_ROUTE_FARE: "tap.no_route_fare",
    TapOutcome.ALREADY_PARKED: "tap.already_parked",
    TapOutcome.SEE_ATTENDANT: "tap.see_attendant",
    TapOutcome.STAY_TOO_LONG: "tap.stay_too_long",
}

# Why a ride code was refused (its QrReason) to the sentence a rider acts on.
CODE_WORDS: dict[QrReason, str] = {
    **dict.fromkeys(
        (
            QrReason.SIZE,
            QrReason.LENGTH_FIELD,
            QrReason.VERSION,
            QrReason.CERT_HEADER,
            QrReason.CERT_FORMAT,
            QrReason.ALGORITHM,
            QrReason.CUSTOM_LENGTH,
            QrReason.ACCOUNT_TEXT,
            QrReason.BCD,
            QrReason.UNKNOWN_ROOT_KEY,
            QrReason.ROOT_KEY_EXPIRED,
            QrReason.CERT_EXPIRED,
            QrReason.CERT_SIGNATURE,
            QrReason.ISSUER_SIGNATURE,
            QrReason.USER_SIGNATURE,
            QrReason.RECORD,
        ),
        "code.invalid",
    ),
    **dict.fromkeys(
        (
            QrReason.AUTH_EXPIRED,
            QrReason.CODE_EXPIRED,
            QrReason.FUTURE,
            QrReason.VALIDITY_TOO_LONG,
        ),
        "code.expired",
    ),
    **dict.fromkeys((QrReason.UNKNOWN_ISSUER, QrReason.ACCOUNT_TYPE), "code.not_here"),
    QrReason.OVER_LIMIT: "code.over_limit",
    **dict.fromkeys((QrReason.REPLAY, QrReason.DEBOUNCE, QrReason.TOO_SOON), "code.used"),
    QrReason.MODE: "tap.code_not_accepted",
    QrReason.FARE: "code.fare",
}


def qr_refusal(reason: str | None, detail: str) -> str:
    """A refused ride code as an operator reads it: the ``QrReason`` picks the words; the
    check's own detail when the catalogue has none (it is written for people too)."""
    key = f"qr.{reason}"
    return say("qr.refused", reason=say(key) if key in CATALOGUE else detail)


PAID_BY_MODE = {"bus": "tap.bus_paid", "metro-exit": "tap.exit_paid"}

# Outcomes whose message names what the sentence cannot (the bike, the entry time, the
# route, the deposit): the sentence is followed by it.
WITH_DETAIL = frozenset(
    {
        TapOutcome.OVER_METER_LIMIT,
        TapOutcome.ALREADY_RENTING,
        TapOutcome.DEPOSIT_SHORT,
        TapOutcome.NO_ROUTE_FARE,
        TapOutcome.ALREADY_PARKED,
        TapOutcome.SEE_ATTENDANT,
        TapOutcome.STAY_TOO_LONG,
    }
)


def code_refusal(reason: str | None) -> str:
    """A refused ride code's reason (a QrReason value) in words."""
    try:
        return say(CODE_WORDS[QrReason(str(reason))])
    except (KeyError, ValueError):
        return say("code.invalid")


def note_words(note: str) -> str:
    """A note (a fare note, a transport refusal's detail, a door's reason) in words: a ``Note``
    by its code and values (a concession kind by its own words when the catalogue has them);
    other text as written."""
    if not isinstance(note, Note):
        return note
    values = dict(note.values)
    kind = f"concession.{values.get('kind')}"
    if note.code is NoteCode.CONCESSION and kind in CATALOGUE:
        values["kind"] = say(kind)
    return say(note.key, **note_values(values, note_words, say("note.separator")))


def mac2_unchecked(row: JournalRow | None) -> bool:
    """A recovered debit settled without the PSAM checking its MAC2 (its session was gone):
    paid, and said so; the TAC is checked at clearing."""
    return row is not None and row.state == SETTLED and not row.mac2_verified


def tap_words(result: TapResult, mode: str | None) -> str:
    """A tap's outcome in words: bus fare, metro entry (no fare), insufficient balance …"""
    key = TAP_WORDS[result.outcome]
    if result.outcome is TapOutcome.COMPLETED and mac2_unchecked(result.row):
        key = "tap.completed_unchecked"
    if key == "tap.paid":
        key = "tap.entry" if mode == "metro-entry" else PAID_BY_MODE.get(str(mode), key)
    reason = result.message
    if result.outcome is TapOutcome.CARD_REFUSED:
        if result.sw is None:
            return say("sw.not_understood")
        if sw_key(result.sw) is None:
            return card_refusal(result.sw)  # the sentence says the card refused, and the SW
        reason = card_refusal(result.sw)
    elif result.outcome is TapOutcome.CODE_REFUSED:
        reason = code_refusal(result.reason)
    elif result.outcome is TapOutcome.FARE_REFUSED:
        reason = fare_refusal(result.reason)
    said = say(key, fare=format_fen(result.fare), reason=reason)
    if result.outcome in WITH_DETAIL:
        return say("tap.detail", sentence=said, detail=note_words(result.message))
    return said


def tap_line(result: TapResult, mode: str | None) -> str:
    """One operator line for a tap: green/red, card number, what happened, balance, time.
    The technical detail (status words, proof) stays in the journal and the logs."""
    words = tap_words(result, mode)
    balance = result.balance
    shown = f"; {say('tap.balance', balance=format_fen(balance))}" if balance is not None else ""
    notes = say("note.separator").join(note_words(n) for n in result.notes)
    extra = f"  {say('tap.notes', notes=notes)}" if notes else ""
    return (
        f"{say('tap.green' if result.green else 'tap.red')} {result.card_number or '-':<19s} "
        f"{words}{shown}{extra}  {result.elapsed_ms:.1f} ms"
    )


def sale_refusal(exc: Exception) -> str:
    """Why a POS sale was refused, as the cashier says it (the status word stays in the log)."""
    from terminal.apdu.errors import InsufficientBalance, TransportError
    from terminal.epurse.flows import BalanceFlagSet
    from terminal.roles.debit import PaymentInterrupted, RecoveredProofRefused
    from terminal.roles.onecard_pos import PaymentRefused

    if isinstance(exc, InsufficientBalance):
        return say("sale.insufficient")
    if isinstance(exc, PaymentRefused):
        if exc.insufficient_balance:
            return say("sale.insufficient")
        return say("sale.cannot_pay", reason="; ".join(exc.attempts) or "-")
    if isinstance(exc, PaymentInterrupted):
        return say("sale.interrupted")
    if isinstance(exc, RecoveredProofRefused):
        return say("sale.proof_refused")
    if isinstance(exc, TransportError):
        return say("error.card_removed")
    if isinstance(exc, BalanceFlagSet):
        return say("tap.not_charged")
    if isinstance(exc, CardError):
        return say("sale.card_refused", reason=card_refusal(exc))
    if isinstance(exc, YikatongError):
        return say("sale.card_refused", reason=exc)
    return say("sale.not_understood")


def kiosk_refusal(exc: Exception) -> str:
    """Why a kiosk request was not done, as its screen says it."""
    from terminal.epurse.host import LoadDeclined
    from terminal.roles.debit import LoadInterrupted
    from terminal.roles.kiosk import TopUpRefused
    from terminal.uplink.client import GatewayRefused, GatewayUnavailable

    if isinstance(exc, TopUpRefused):
        return say("kiosk.refused", reason=kiosk_words(exc.code, exc.fields))
    if isinstance(exc, LoadDeclined):
        return say("error.gateway_said", sentence=say("gw.declined"), reason=exc.reason)
    if isinstance(exc, GatewayUnavailable):
        return say("kiosk.unavailable")
    if isinstance(exc, GatewayRefused):
        return error_words(exc)
    if isinstance(exc, LoadInterrupted):
        return say("kiosk.load_interrupted")
    if isinstance(exc, TransportError):
        return say("error.card_removed")
    if isinstance(exc, CardError):
        return card_refusal(exc)
    return say("sale.not_understood")


def desk_refusal(exc: Exception) -> str:
    """Why the desk issued no card, as the clerk's screen says it."""
    from terminal.roles.issuance import CardAlreadyIssued, IssuanceError
    from terminal.uplink.client import GatewayRefused, GatewayUnavailable

    if isinstance(exc, GatewayUnavailable):
        return say("desk.unavailable")
    if isinstance(exc, GatewayRefused):
        return error_words(exc)
    if isinstance(exc, CardAlreadyIssued):
        return say("desk.already_issued")
    if isinstance(exc, CardError):
        return say("desk.card_refused", reason=card_refusal(exc))
    if isinstance(exc, IssuanceError):
        return issuance_words(exc)
    return say("desk.failed", reason=exc)


def issuance_words(exc: IssuanceError) -> str:
    """Why the desk issued no card, by the refusal's code; a refusal inside it (the card
    centre's, a failed lease) is worded by its own code."""
    return say(f"issuance.{exc.code}", **{k: _issuance_field(v) for k, v in exc.fields.items()})


def _issuance_field(value: object) -> str:
    from terminal.roles.issuance import IssuanceError

    if isinstance(value, IssuanceError):
        return issuance_words(value)
    code, reason = getattr(value, "code", None), getattr(value, "reason", None)
    if isinstance(reason, str):
        key = f"issuance.centre.{code}"
        return say(key if key in CATALOGUE else "issuance.centre", reason=reason)
    return str(value)


def outcome_text(doc: Mapping[str, object]) -> str:
    """The operator's sentence for a POS sale's or kiosk request's answer (``doc``): what was
    done, or the refusal's words (``text``, else the ``refused`` reason)."""
    if not doc.get("ok"):
        return str(doc.get("text") or doc.get("refused") or "")
    amount, balance = doc.get("amount_fen"), doc.get("balance_fen")
    shown = {
        "amount": format_fen(amount) if isinstance(amount, int) else "-",
        "balance": format_fen(balance) if isinstance(balance, int) else "-",
    }
    key = {"top-up": "kiosk.topped_up", "pickup": "kiosk.picked_up"}.get(
        str(doc.get("action")),
        "kiosk.balance_read" if doc.get("action") == "balance" else "sale.paid",
    )
    return say(key, **shown)


def door_words(decision: Decision) -> str:
    """A door's decision in words: may pass, or refused and why (the reason's code picks the
    words; a reason without one is shown as written)."""
    if decision.granted:
        return say("door.granted")
    return say("door.refused", reason=note_words(decision.reason))


def door_line(decision: Decision) -> str:
    """The operator's line for a door's decision: green or red, the point, who, why."""
    who = decision.person_no or decision.card_serial or say("door.unknown_card")
    if decision.granted:
        return say("door.line.granted", point=decision.point, who=who)
    reason = note_words(decision.reason)
    return say("door.line.refused", point=decision.point, who=who, reason=reason)
