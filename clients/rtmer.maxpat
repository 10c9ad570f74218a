{
 "patcher": {
  "fileversion": 1,
  "appversion": {
   "major": 8,
   "minor": 6,
   "revision": 2,
   "architecture": "x64",
   "modernui": 1
  },
  "classnamespace": "box",
  "rect": [
   100.0,
   100.0,
   720.0,
   420.0
  ],
  "bglocked": 0,
  "openinpresentation": 0,
  "default_fontsize": 12.0,
  "default_fontface": 0,
  "default_fontname": "Arial",
  "gridonopen": 1,
  "gridsize": [
   15.0,
   15.0
  ],
  "gridsnaponopen": 1,
  "objectsnaponopen": 1,
  "statusbarvisible": 2,
  "toolbarvisible": 1,
  "boxanimatetime": 200,
  "description": "Receives rtmer's OSC",
  "digest": "",
  "tags": "rtmer osc",
  "boxes": [
   {
    "box": {
     "id": "obj-title",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20,
      10,
      700,
      20
     ],
     "text": "rtmer.maxpat: receives rtmer's OSC (rtmer run --osc 127.0.0.1:9000). Values are floats in [-1, 1]."
    }
   },
   {
    "box": {
     "id": "obj-port",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      20,
      40,
      60,
      22
     ],
     "outlettype": [
      ""
     ],
     "text": "port 9000"
    }
   },
   {
    "box": {
     "id": "obj-port-note",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      90,
      40,
      420,
      20
     ],
     "text": "click to change udpreceive's port (edit the number first)"
    }
   },
   {
    "box": {
     "id": "obj-udp",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      20,
      75,
      110,
      22
     ],
     "outlettype": [
      ""
     ],
     "text": "udpreceive 9000"
    }
   },
   {
    "box": {
     "id": "obj-route",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 6,
     "patching_rect": [
      20,
      110,
      520,
      22
     ],
     "outlettype": [
      "",
      "",
      "",
      "",
      "",
      ""
     ],
     "text": "route /rtmer/valence /rtmer/arousal /rtmer/va /rtmer/mood /rtmer/raw/va"
    }
   },
   {
    "box": {
     "id": "obj-v",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      20,
      160,
      70,
      22
     ],
     "outlettype": [
      "",
      "bang"
     ],
     "parameter_enable": 0,
     "format": 6
    }
   },
   {
    "box": {
     "id": "obj-a",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      120,
      160,
      70,
      22
     ],
     "outlettype": [
      "",
      "bang"
     ],
     "parameter_enable": 0,
     "format": 6
    }
   },
   {
    "box": {
     "id": "obj-va",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      220,
      160,
      70,
      22
     ],
     "outlettype": [
      "float",
      "float"
     ],
     "text": "unpack f f"
    }
   },
   {
    "box": {
     "id": "obj-va-v",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      220,
      195,
      60,
      22
     ],
     "outlettype": [
      "",
      "bang"
     ],
     "parameter_enable": 0,
     "format": 6
    }
   },
   {
    "box": {
     "id": "obj-va-a",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      290,
      195,
      60,
      22
     ],
     "outlettype": [
      "",
      "bang"
     ],
     "parameter_enable": 0,
     "format": 6
    }
   },
   {
    "box": {
     "id": "obj-mood-set",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      370,
      160,
      80,
      22
     ],
     "outlettype": [
      ""
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-mood",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      370,
      195,
      80,
      22
     ],
     "outlettype": [
      ""
     ],
     "text": ""
    }
   },
   {
    "box": {
     "id": "obj-raw",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      470,
      160,
      70,
      22
     ],
     "outlettype": [
      "float",
      "float"
     ],
     "text": "unpack f f"
    }
   },
   {
    "box": {
     "id": "obj-raw-v",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      470,
      195,
      60,
      22
     ],
     "outlettype": [
      "",
      "bang"
     ],
     "parameter_enable": 0,
     "format": 6
    }
   },
   {
    "box": {
     "id": "obj-raw-a",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      540,
      195,
      60,
      22
     ],
     "outlettype": [
      "",
      "bang"
     ],
     "parameter_enable": 0,
     "format": 6
    }
   },
   {
    "box": {
     "id": "obj-other",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      560,
      160,
      110,
      22
     ],
     "text": "print rtmer-other"
    }
   },
   {
    "box": {
     "id": "obj-c-v",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20,
      230,
      140,
      20
     ],
     "text": "valence"
    }
   },
   {
    "box": {
     "id": "obj-c-a",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      120,
      230,
      90,
      20
     ],
     "text": "arousal"
    }
   },
   {
    "box": {
     "id": "obj-c-va",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      220,
      230,
      140,
      20
     ],
     "text": "va: valence, arousal"
    }
   },
   {
    "box": {
     "id": "obj-c-mood",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      370,
      230,
      90,
      20
     ],
     "text": "mood"
    }
   },
   {
    "box": {
     "id": "obj-c-raw",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      470,
      230,
      140,
      20
     ],
     "text": "raw/va: unsmoothed"
    }
   },
   {
    "box": {
     "id": "obj-scale",
     "maxclass": "newobj",
     "numinlets": 6,
     "numoutlets": 1,
     "patching_rect": [
      20,
      280,
      140,
      22
     ],
     "outlettype": [
      ""
     ],
     "text": "scale -1. 1. 0. 1."
    }
   },
   {
    "box": {
     "id": "obj-scaled",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      20,
      315,
      70,
      22
     ],
     "outlettype": [
      "",
      "bang"
     ],
     "parameter_enable": 0,
     "format": 6
    }
   },
   {
    "box": {
     "id": "obj-c-scale",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      170,
      280,
      520,
      20
     ],
     "text": "arousal mapped to [0, 1] (or start rtmer with --osc-unit-range)"
    }
   },
   {
    "box": {
     "id": "obj-c-streams",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20,
      360,
      680,
      34
     ],
     "text": "Several streams (or --osc-stream-ids always) put the stream id in the address: route /rtmer/deck1/valence /rtmer/deck1/arousal ... for deck1.",
     "linecount": 2
    }
   }
  ],
  "lines": [
   {
    "patchline": {
     "source": [
      "obj-port",
      0
     ],
     "destination": [
      "obj-udp",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-udp",
      0
     ],
     "destination": [
      "obj-route",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-route",
      0
     ],
     "destination": [
      "obj-v",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-route",
      1
     ],
     "destination": [
      "obj-a",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-route",
      1
     ],
     "destination": [
      "obj-scale",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-route",
      2
     ],
     "destination": [
      "obj-va",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-va",
      0
     ],
     "destination": [
      "obj-va-v",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-va",
      1
     ],
     "destination": [
      "obj-va-a",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-route",
      3
     ],
     "destination": [
      "obj-mood-set",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-mood-set",
      0
     ],
     "destination": [
      "obj-mood",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-route",
      4
     ],
     "destination": [
      "obj-raw",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-raw",
      0
     ],
     "destination": [
      "obj-raw-v",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-raw",
      1
     ],
     "destination": [
      "obj-raw-a",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-route",
      5
     ],
     "destination": [
      "obj-other",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-scale",
      0
     ],
     "destination": [
      "obj-scaled",
      0
     ]
    }
   }
  ]
 }
}
