"""Transport ride QR codes (交通一卡通二维码): the payload, its offline checks, ride records.

``code`` declares the payload once (parse and build); ``checks`` verifies a code offline
(root key → issuer certificate → issuer signature → user signature, times, whitelist,
replay); ``sm2`` is SM2/SM3 through the system's OpenSSL 3. docs/qr.md describes them.
"""
