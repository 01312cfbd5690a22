"""Who the demo customers are: names, phones, e-mails, companies, birth dates (all vectorised).

Name characters come once from Faker's zh_CN provider lists; values are drawn with numpy, never with
a per-row Faker call, so a million customers take seconds.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from faker.providers.company.zh_CN import Provider as _CompanyProvider
from faker.providers.person.zh_CN import Provider as _PersonProvider
from faker.providers.phone_number.zh_CN import Provider as _PhoneProvider

_SURNAMES = np.array(list(_PersonProvider.last_names.keys()))
_SURNAME_P = np.array(list(_PersonProvider.last_names.values()), dtype=float)
_SURNAME_P /= _SURNAME_P.sum()
_GIVEN = {
    "女": np.array(_PersonProvider.first_names_female),
    "男": np.array(_PersonProvider.first_names_male),
}
# single characters of each gender's given names, to combine into two-character names
_GIVEN_CHARS = {g: np.array(sorted(set("".join(names)))) for g, names in _GIVEN.items()}
# valid mainland mobile prefixes: 1[3-9]x
_MOBILE_PREFIXES = np.array(
    sorted({str(p) for p in _PhoneProvider.phonenumber_prefixes if 130 <= p <= 199})
)
_COMPANY_PREFIXES = np.array(_CompanyProvider.company_prefixes)

_LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))
_DIGITS = np.array(list("0123456789"))
_EMAIL_DOMAINS = np.array(["qq.com", "163.com", "126.com", "sina.com", "foxmail.com", "139.com"])
_EMAIL_DOMAIN_P = np.array([0.46, 0.22, 0.12, 0.06, 0.08, 0.06])

INDUSTRIES = (
    "餐饮",
    "酒店",
    "学校食堂",
    "医院",
    "机关单位",
    "制造业",
    "物业",
    "幼儿园",
    "零售",
    "物流",
)
_INDUSTRY_SUFFIX = {
    "餐饮": "餐饮管理有限公司",
    "酒店": "酒店管理有限公司",
    "学校食堂": "后勤服务有限公司",
    "医院": "医疗管理有限公司",
    "机关单位": "服务中心",
    "制造业": "制造有限公司",
    "物业": "物业服务有限公司",
    "幼儿园": "教育咨询有限公司",
    "零售": "商贸有限公司",
    "物流": "物流有限公司",
}
COMPANY_SIZES = ("1-49", "50-199", "200-999", "1000+")
_COMPANY_SIZE_P = (0.55, 0.28, 0.12, 0.05)


def random_strings(
    rng: np.random.Generator, alphabet: np.ndarray, n: int, length: int
) -> np.ndarray:
    """``n`` random strings of ``length`` characters from ``alphabet`` (vectorised)."""
    chars = alphabet[rng.integers(0, len(alphabet), size=(n, length))].astype("<U1")
    return np.ascontiguousarray(chars).view(f"<U{length}").ravel()


def names(rng: np.random.Generator, gender: np.ndarray) -> np.ndarray:
    """Chinese full names; ``gender`` holds 男/女 (anything else draws from both)."""
    n = len(gender)
    surname = rng.choice(_SURNAMES, size=n, p=_SURNAME_P)
    female = gender == "女"
    male = gender == "男"
    other = ~(female | male)
    female |= other & (rng.random(n) < 0.5)
    given = np.empty(n, dtype=object)
    for key, mask in (("女", female), ("男", ~female)):
        k = int(mask.sum())
        whole = rng.choice(_GIVEN[key], size=k)
        chars = _GIVEN_CHARS[key]
        pair = np.char.add(rng.choice(chars, size=k), rng.choice(chars, size=k))
        # about half the names are two-character combinations, for variety
        given[mask] = np.where(rng.random(k) < 0.5, pair, whole)
    return np.char.add(surname, given.astype(str))


def unique_mobiles(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct, valid mainland mobile numbers (11 digits, ``1[3-9]x``)."""
    prefixes = _MOBILE_PREFIXES.astype(np.int64) * 10**8

    def draw(k: int) -> np.ndarray:
        return rng.choice(prefixes, size=k) + rng.integers(0, 10**8, size=k)

    phones = draw(n)
    # redraw the (rare) collisions until every number is unique; integers sort fast
    while True:
        _, first = np.unique(phones, return_index=True)
        duplicate = np.ones(n, dtype=bool)
        duplicate[first] = False
        k = int(duplicate.sum())
        if k == 0:
            return phones.astype(str)
        phones[duplicate] = draw(k)


def emails(rng: np.random.Generator, n: int, share: float = 0.62) -> np.ndarray:
    """E-mail addresses for about ``share`` of ``n`` people, empty strings for the rest."""
    domain = rng.choice(_EMAIL_DOMAINS, size=n, p=_EMAIL_DOMAIN_P)
    handle = np.empty(n, dtype=object)
    length = rng.integers(5, 11, size=n)
    numeric = (domain == "qq.com") & (rng.random(n) < 0.7)  # QQ mail is mostly the QQ number
    for size in range(5, 11):
        mask = length == size
        k = int(mask.sum())
        digits = random_strings(rng, _DIGITS, k, size)
        digits = np.char.add(rng.choice(_DIGITS[1:], size=k), np.char.lstrip(digits, "0"))
        letters = np.char.add(
            random_strings(rng, _LETTERS, k, size - 2), random_strings(rng, _DIGITS, k, 2)
        )
        handle[mask] = np.where(numeric[mask], digits, letters)
    address = np.char.add(np.char.add(handle.astype(str), "@"), domain)
    return np.where(rng.random(n) < share, address, "")


def birth_dates(rng: np.random.Generator, n: int, as_of: date) -> np.ndarray:
    """Birth dates with about 55 % aged 40-60 on ``as_of`` (seed 000: mostly 40-60)."""
    band = rng.choice(3, size=n, p=[0.55, 0.29, 0.16])
    low = np.array([40, 20, 61])[band]
    high = np.array([60, 39, 78])[band]
    # age in whole years uniform in [low, high], then a random day within that year of age
    age_days = (rng.integers(low, high + 1) * 365.25 + rng.uniform(1, 364, size=n)).astype(np.int64)
    return np.datetime64(as_of, "D") - age_days.astype("timedelta64[D]")


def companies(
    rng: np.random.Generator, n: int, cities: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Company name, industry and size band for ``n`` corporate (企业) customers."""
    industry = rng.choice(np.array(INDUSTRIES), size=n)
    suffix = pd.Series(industry).map(_INDUSTRY_SUFFIX).to_numpy(dtype=object)
    prefix = rng.choice(_COMPANY_PREFIXES, size=n)
    name = np.char.add(np.char.add(cities.astype(str), prefix), suffix.astype(str))
    size = rng.choice(np.array(COMPANY_SIZES), size=n, p=_COMPANY_SIZE_P)
    return name, industry, size


def staff_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """Names for staff (sales reps), mixed gender."""
    return names(rng, np.where(rng.random(n) < 0.5, "男", "女"))
