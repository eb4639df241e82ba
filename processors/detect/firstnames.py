"""Common first names in Norway and in English-speaking countries (lower case).

Used by :mod:`processors.detect.people` only where a name is likely (before a capitalised surname,
after a greeting). Names that are also common English words (Will, May, Mark, Bill, Grace, Hope,
Rose, June, Frank, Iris ...) are left out on purpose: as words they would be scrubbed far more often
than as names.
"""

from __future__ import annotations

from typing import Final

__all__ = ["FIRST_NAMES"]

_NORWEGIAN: Final = """
ola kari nora emma olivia sofie ingrid leah sara maja ella frida vilde thea tiril emilie ida hanna
hedda astrid selma julie marte ane anne anna kristin hilde silje marit liv randi ragnhild solveig
tone turid berit bjørg gunn inger eli elin heidi camilla mari mia amalie aurora jenny linnea ylva
jakob emil noah oliver filip lucas william liam henrik oskar aksel isak theodor magnus mathias
sander tobias jonas elias kristian martin andreas ole lars per jan nils knut bjørn svein arne
geir odd terje trond rune morten espen øyvind håkon halvor sigurd eirik erik jon hans egil leif
kjell tor tore stein rolf harald olav ivar sindre vegard torbjørn gunnar petter pål even håvard
jørgen ragnar steinar asbjørn åse siri tuva karoline malin maren oda hege kjersti torunn gro wenche
"""
_ENGLISH: Final = """
james john robert michael david richard joseph thomas charles christopher daniel matthew anthony
donald steven paul andrew joshua kenneth kevin brian george timothy ronald edward jason jeffrey ryan
jacob gary nicholas eric jonathan stephen larry justin scott brandon benjamin samuel gregory
alexander patrick raymond jack dennis jerry tyler aaron jose adam nathan henry peter zachary douglas
harold kyle walter ethan jeremy harry christian keith roger terry sean austin arthur lawrence
mary patricia jennifer linda elizabeth barbara susan jessica sarah karen lisa nancy betty margaret
sandra ashley kimberly donna michelle carol amanda dorothy melissa deborah stephanie rebecca sharon
laura cynthia kathleen amy angela shirley brenda pamela nicole samantha katherine christine debra
rachel carolyn janet catherine maria heather diane julie joyce victoria kelly christina lauren
joan evelyn judith megan andrea cheryl hannah jacqueline martha gloria teresa sara madison
frances kathryn janice jean abigail alice judy sophia denise marilyn danielle beverly isabella
theresa diana natalie brittany charlotte marie kayla alexis lori alice bob alan ben tom tim sam
jim joe dave steve mike chris matt dan nick tony andy emily jane kate lucy sophie chloe jessica
"""
FIRST_NAMES: Final = frozenset((_NORWEGIAN + _ENGLISH).split())
