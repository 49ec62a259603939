"""Our asyncio SIP stack (RFC 3261), layered as pjsip is: message → transport → transaction →
dialog → invite session → the trunk adapter that turns sessions into legs."""
